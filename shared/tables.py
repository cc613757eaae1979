"""Table names and keys: one place that knows how rows are laid out (design §5).

- messages:    PartitionKey = message id; RowKey `ledger|<message id>` for the ledger row, `evt|<hash>` for event
               rows, so one entity-group transaction can insert an event and advance the status. The ledger
               row's RowKey repeats the id so that no RowKey is shared across partitions: Azure serves a
               point read by both keys either way, but Azurite finds a row by RowKey first, and a RowKey
               shared by every message made each point read there cost O(messages).
- providerids: PartitionKey = RowKey = provider message id -> message id (email operation id, SMS and WhatsApp ids);
               the RowKey repeats the id for the same reason.
- due:         PartitionKey = `due`, RowKey = `<iso due time>|<message id>|<kind>`: reconciliation reads
               only what is due (a range query), never the history.
- orphans:     PartitionKey = provider message id, RowKey = event key: reports that arrived before their
               message was known; partition `~due` is their recheck index (as `due`), partition
               `rejected-events` holds malformed events once each (RowKey = hash of the payload).
- consent:     PartitionKey = `<channel>|<keyed hash of address>`, RowKey = sender or `*`.
- audit, deadletters, reports, control: operator history, undecodable poison payloads, summaries, pause switches.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

LEDGER_PREFIX = "ledger|"
# Every ledger row, and nothing else: `|` sorts right before `}`, and event rows start with `evt|`.
LEDGER_ROWS_FILTER = "RowKey ge 'ledger|' and RowKey lt 'ledger}'"
DUE_PARTITION = "due"
PAYLOAD_CHUNK = 30_000  # characters per string property (Table Storage allows 64 KiB = 32K UTF-16 units)


@dataclass(frozen=True)
class TableNames:
    prefix: str

    @property
    def messages(self) -> str:
        return f"{self.prefix}messages"

    @property
    def provider_ids(self) -> str:
        return f"{self.prefix}providerids"

    @property
    def due(self) -> str:
        return f"{self.prefix}due"

    @property
    def orphans(self) -> str:
        return f"{self.prefix}orphans"

    @property
    def consent(self) -> str:
        return f"{self.prefix}consent"

    @property
    def audit(self) -> str:
        return f"{self.prefix}audit"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}deadletters"

    @property
    def reports(self) -> str:
        return f"{self.prefix}reports"

    @property
    def inbound(self) -> str:
        return f"{self.prefix}inbound"

    @property
    def payload_container(self) -> str:
        return f"{self.prefix}-payloads"

    @property
    def control(self) -> str:
        return f"{self.prefix}control"

    def all(self) -> tuple[str, ...]:
        return (
            self.messages,
            self.provider_ids,
            self.due,
            self.orphans,
            self.consent,
            self.audit,
            self.dead_letters,
            self.reports,
            self.control,
            self.inbound,
        )


def ledger_row_key(message_id: str) -> str:
    return f"{LEDGER_PREFIX}{message_id}"


def is_ledger_row(row_key: str) -> bool:
    return row_key.startswith(LEDGER_PREFIX)


def provider_id_keys(provider_message_id: str) -> tuple[str, str]:
    """(PartitionKey, RowKey) of a provider id's index row."""
    return provider_message_id, provider_message_id


def event_row_key(provider_message_id: str, kind: str, status: str, event_time: str) -> str:
    """Deterministic event key: the same report delivered twice has the same key (design §4.3)."""
    digest = hashlib.sha256(f"{provider_message_id}|{kind}|{status.lower()}|{event_time}".encode()).hexdigest()
    return f"evt|{digest[:40]}"


def due_row_key(due_iso: str, message_id: str, kind: str) -> str:
    return f"{due_iso}|{message_id}|{kind}"


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le", errors="surrogatepass")) // 2


def split_payload(text: str) -> dict[str, str]:
    """Spread a long string over Payload0..PayloadN properties of at most PAYLOAD_CHUNK UTF-16 units
    each: Table Storage measures a string property in UTF-16, where a character beyond the BMP (an
    emoji) takes two units, so 30,000 characters can be 60,000 units and be refused."""
    parts: dict[str, str] = {}
    start = 0
    while start < len(text):
        end = min(len(text), start + PAYLOAD_CHUNK)
        while (excess := _utf16_units(text[start:end]) - PAYLOAD_CHUNK) > 0:
            end -= (excess + 1) // 2  # each character dropped is one or two units
        parts[f"Payload{len(parts)}"] = text[start:end]
        start = end
    return parts


def verbatim_payload(body: bytes) -> dict[str, object]:
    """Payload columns that give back exactly `body`: its text when it is UTF-8, else its base64
    (`PayloadEncoding` says which), so that bytes which are not text are kept as well."""
    try:
        text, encoding = body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(body).decode("ascii"), "base64"
    return {"PayloadEncoding": encoding, "PayloadBytes": len(body), **split_payload(text)}


def join_payload(entity: dict[str, object]) -> str | None:
    parts = []
    index = 0
    while f"Payload{index}" in entity:
        parts.append(str(entity[f"Payload{index}"]))
        index += 1
    return "".join(parts) if parts else None
