"""Table names and keys: one place that knows how rows are laid out (design §5).

- messages:    PartitionKey = message id; RowKey `ledger|<message id>` for the ledger row, `evt|<hash>` for event
               rows, so one entity-group transaction can insert an event and advance the status. The ledger
               row's RowKey repeats the id so that no RowKey is shared across partitions: Azure serves a
               point read by both keys either way, but Azurite finds a row by RowKey first, and a RowKey
               shared by every message made each point read there cost O(messages).
- providerids: PartitionKey = RowKey = provider message id -> message id (email operation id, SMS and WhatsApp ids);
               the RowKey repeats the id for the same reason.
- due:         PartitionKey = `due`, RowKey = `<iso due time>|<message id>|<kind>`: reconciliation reads
               only what is due (a range query), never the history. Partition `retention` (the retention
               index) has the same layout.
- orphans:     PartitionKey = provider message id, RowKey = event key: reports that arrived before their
               message was known; partition `~due` is their recheck index (as `due`).
- rejectedevents: PartitionKey = `rejected-events`, RowKey = hash of the payload: malformed events, once each.
- consent:     PartitionKey = `<channel>|<keyed hash of address>`, RowKey = sender or `*`.
- audit:       PartitionKey = `audit`, RowKey = `<iso time>|<entry id>`: operator history, in time order.
- deadletters: PartitionKey = `raw`, RowKey = queue message id: undecodable poison payloads, verbatim.
- reports:     PartitionKey = `summary`, RowKey = iso time of the reconcile run: one summary per run.
- control:     PartitionKey = `pause`, RowKey = the paused channel or sender identity.
- inbound:     PartitionKey = `<channel>|<keyed hash of the sender>`, RowKey = the event key: messages users sent
               us; RowKey `window|<channel id>` in a WhatsApp user's partition: when they last wrote to that
               channel (`ServiceWindowRow`, the 24-hour service window).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from shared.models import Channel, DeliveryMode, Status

if TYPE_CHECKING:
    from shared.events_model import AcsEvent

LEDGER_PREFIX = "ledger|"
# Every ledger row, and nothing else: `|` sorts right before `}`, and event rows start with `evt|`.
LEDGER_ROWS_FILTER = "RowKey ge 'ledger|' and RowKey lt 'ledger}'"
DUE_PARTITION = "due"
AUDIT_PARTITION = "audit"
RAW_PARTITION = "raw"  # dead letters kept verbatim
REPORT_PARTITION = "summary"
PAUSE_PARTITION = "pause"
MAX_INLINE_PAYLOAD = 60_000  # characters kept in the ledger row; larger requests live in blob storage
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
    def retention(self) -> str:
        """Retention's due entries, apart from reconciliation's: they live for the retention period (one
        per message ever sent), and would otherwise grow the table reconciliation reads every run."""
        return f"{self.prefix}retention"

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
    def rejected_events(self) -> str:
        return f"{self.prefix}rejectedevents"

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
            self.retention,
            self.orphans,
            self.consent,
            self.audit,
            self.dead_letters,
            self.reports,
            self.control,
            self.inbound,
            self.rejected_events,
        )


# -- keys and queries -------------------------------------------------------------------------------

PARTITION_FILTER = "PartitionKey eq @pk"  # every row of one partition
PARTITION_SINCE_FILTER = "PartitionKey eq @pk and RowKey ge @since"  # a partition's rows from a key on
PARTITION_UNTIL_FILTER = "PartitionKey eq @pk and RowKey lt @until"  # a partition's rows below a key
EVERY_ROW_FILTER = "PartitionKey ne @none"  # a scan of the table (with none="")
LEDGER_STATUS_FILTER = f"{LEDGER_ROWS_FILTER} and Status eq @s"  # the ledger rows in one status
DUE_KIND_FILTER = "PartitionKey eq @pk and Kind eq @kind"  # a due index's entries of one kind


def keys_of(entity: Mapping[str, Any]) -> tuple[str, str]:
    """(PartitionKey, RowKey) of an entity."""
    return str(entity["PartitionKey"]), str(entity["RowKey"])


def row_key_of(entity: Mapping[str, Any]) -> str:
    return str(entity["RowKey"])


def row_key_entity(partition: str, row_key: str) -> dict[str, Any]:
    """An entity of the two key columns alone (what a merge of some columns starts from)."""
    return {"PartitionKey": partition, "RowKey": row_key}


def without_keys(entity: Mapping[str, Any]) -> dict[str, Any]:
    """An entity's columns besides its keys."""
    return {k: v for k, v in entity.items() if k not in ("PartitionKey", "RowKey")}


def ledger_row_key(message_id: str) -> str:
    return f"{LEDGER_PREFIX}{message_id}"


def is_ledger_row(row_key: str) -> bool:
    return row_key.startswith(LEDGER_PREFIX)


def is_history_row(row_key: str) -> bool:
    """An event or conflict row of a message's history (not its ledger row, not its status-feed rows)."""
    return not is_ledger_row(row_key) and not row_key.startswith(OUTBOX_PREFIX)


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


def verbatim_text(body: bytes) -> tuple[str, str]:
    """Text that gives back exactly `body`, and its encoding: the text when it is UTF-8, else its
    base64, so that bytes which are not text are kept as well."""
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


def verbatim_payload(body: bytes) -> dict[str, object]:
    """Payload columns that give back exactly `body` (`PayloadEncoding` says how)."""
    text, encoding = verbatim_text(body)
    return {"PayloadEncoding": encoding, "PayloadBytes": len(body), **split_payload(text)}


def join_payload(entity: Mapping[str, object]) -> str | None:
    parts = []
    index = 0
    while f"Payload{index}" in entity:
        parts.append(str(entity[f"Payload{index}"]))
        index += 1
    return "".join(parts) if parts else None


# -- the ledger row ---------------------------------------------------------------------------------

# Attribute name → column name for the ledger row's scalar columns. The per-status times
# (`<Status>At`) and the payload chunks (`Payload0`..) are mapped apart.
_LEDGER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("channel_name", "Channel"),
    ("purpose", "Purpose"),
    ("delivery_mode", "Delivery"),
    ("sender", "Sender"),
    ("recipient_masked", "RecipientMasked"),
    ("recipient_hash", "RecipientHash"),
    ("segments", "Segments"),
    ("correlation_id", "CorrelationId"),
    ("expires_at", "ExpiresAt"),
    ("created_at", "CreatedAt"),
    ("source", "Source"),
    ("payload_hash", "PayloadHash"),
    ("payload_ref", "PayloadRef"),
    ("payload_encoding", "PayloadEncoding"),
    ("payload_bytes", "PayloadBytes"),
    ("payload_truncated", "PayloadTruncated"),
    ("errors", "Errors"),
    ("attempts", "Attempts"),
    ("generation", "Generation"),
    ("ids_generation", "IdsGeneration"),
    ("repeatability_id", "RepeatabilityId"),
    ("first_sent_at", "FirstSentAt"),
    ("uncertain_generation", "UncertainGeneration"),
    ("previous_generation", "PreviousGeneration"),
    ("provider_message_id", "ProviderMessageId"),
    ("cost_estimate", "CostEstimate"),
    ("updated_at", "UpdatedAt"),
    ("status_event_time", "StatusEventTime"),
    ("reason", "Reason"),
    ("delivery_latency_ms", "DeliveryLatencyMs"),
    ("retries", "Retries"),
    ("last_retry_at", "LastRetryAt"),
    ("last_error", "LastError"),
    ("throttles", "Throttles"),
    ("replayed_at", "ReplayedAt"),
    ("sla_rechecks", "SlaRechecks"),
    ("content_purged_at", "ContentPurgedAt"),
    ("recipient_purged_at", "RecipientPurgedAt"),
    ("metadata", "Metadata"),
    ("feed_sequence", "FeedSequence"),
    ("fallback_on", "FallbackOn"),
    ("fallback_id", "FallbackId"),
    ("fallback_of", "FallbackOf"),
)
_INT_COLUMNS = frozenset(
    {
        "segments",
        "payload_bytes",
        "attempts",
        "generation",
        "ids_generation",
        "uncertain_generation",
        "previous_generation",
        "retries",
        "throttles",
        "sla_rechecks",
        "feed_sequence",
    }
)
_FLOAT_COLUMNS = frozenset({"cost_estimate", "delivery_latency_ms"})
# Counters that only exist once counted (a row that never waited has no Retries column).
_ZERO_IS_ABSENT = frozenset({"retries", "throttles", "sla_rechecks", "feed_sequence"})
# Columns that retention blanks (a merge cannot remove a property) and that then read as absent.
_BLANK_IS_ABSENT = _INT_COLUMNS | _FLOAT_COLUMNS | {"payload_ref"}
# The columns a per-process cache keeps of a row: what the event projection and the Sent write read.
# The status feed's outbox reads the rest (a change's event carries them).
SLIM_COLUMNS = frozenset(
    {
        "status",
        "status_event_time",
        "provider_message_id",
        "delivery_latency_ms",
        "channel_name",
        "created_at",
        "recipient_masked",
        "correlation_id",
        "metadata",
        "segments",
        "cost_estimate",
        "reason",
        "feed_sequence",
        "fallback_on",  # the ledger's fallback hook decides on every write, the event projection's too
    }
)
# Columns of the ledger row that the status API shows (GET /api/messages/{id}), besides the status times.
PUBLIC_COLUMNS = (
    "Channel",
    "Status",
    "Purpose",
    "Delivery",
    "RecipientMasked",
    "Sender",
    "Attempts",
    "Segments",
    "CostEstimate",
    "ProviderMessageId",
    "Reason",
    "CorrelationId",
    "CreatedAt",
    "ExpiresAt",
    "DeliveryLatencyMs",
)


def public_columns(row: LedgerRow) -> dict[str, Any]:
    """The ledger columns an API caller may see (ids, statuses, times and counts; never content or
    addresses), keyed in camelCase."""
    entity = row.to_entity()
    visible = PUBLIC_COLUMNS + tuple(_status_column(s) for s in Status)
    return {k[0].lower() + k[1:]: entity[k] for k in visible if k in entity}


def _status_column(status: Status) -> str:
    return f"{status.value}At"


_STATUS_COLUMNS = tuple((status, _status_column(status)) for status in Status)
_STATUS_COLUMN = dict(_STATUS_COLUMNS)


def _reader(attr: str) -> Any:
    return int if attr in _INT_COLUMNS else float if attr in _FLOAT_COLUMNS else None


# The stored columns of a slim row (`LedgerRow.slim`): what a read for an etag-guarded change selects,
# so that a report's projection never reads the request's payload or the feed history back.
SLIM_SELECT: tuple[str, ...] = (
    "PartitionKey",
    "RowKey",
    "Status",
    *(column for attr, column in _LEDGER_COLUMNS if attr in SLIM_COLUMNS),
    *(column for _, column in _STATUS_COLUMNS),
)

# Per column: how a stored value becomes the attribute (None: kept as stored), and whether "" is absent.
_READERS: tuple[tuple[str, str, Any, bool], ...] = tuple(
    (attr, column, _reader(attr), attr in _BLANK_IS_ABSENT) for attr, column in _LEDGER_COLUMNS
)


@dataclass(frozen=True)
class LedgerRow:
    """The ledger row of one message (design §5), with the etag of the read that produced it.

    Changes are new rows (`dataclasses.replace`, `moved_to`); the ledger writes the columns that differ
    (`changed_columns`), guarded by the etag. Columns that are not set are absent from the entity."""

    message_id: str
    status: Status
    channel_name: str = "unknown"  # a request rejected before its channel was known says "unknown"
    etag: str = ""
    times: Mapping[Status, str] = field(default_factory=dict)  # when each status was reached
    purpose: str | None = None
    delivery_mode: str | None = None
    sender: str | None = None
    recipient_masked: str | None = None
    recipient_hash: str | None = None
    segments: int | None = None
    correlation_id: str | None = None
    expires_at: str | None = None
    created_at: str | None = None
    source: str | None = None
    payload_hash: str | None = None
    payload_ref: str | None = None
    payload: str | None = None  # the request's text (or a rejected body verbatim), over Payload0..N
    payload_encoding: str | None = None
    payload_bytes: int | None = None
    payload_truncated: bool | None = None
    errors: str | None = None
    attempts: int = 0
    generation: int = 0
    ids_generation: int | None = None
    repeatability_id: str | None = None
    first_sent_at: str | None = None
    uncertain_generation: int | None = None
    previous_generation: int | None = None
    provider_message_id: str | None = None
    cost_estimate: float | None = None
    updated_at: str | None = None
    status_event_time: str | None = None
    reason: str | None = None
    delivery_latency_ms: float | None = None
    retries: int = 0
    last_retry_at: str | None = None
    last_error: str | None = None
    throttles: int = 0
    replayed_at: str | None = None
    sla_rechecks: int = 0
    content_purged_at: str | None = None
    recipient_purged_at: str | None = None
    metadata: str | None = None  # the request's metadata as JSON (the status feed's events carry it)
    feed_sequence: int = 0  # the last status-feed sequence number given to this message's changes
    # The status feed's outbox on the row itself: sequence -> the change's CloudEvent JSON, one column
    # each (`feed_column`; see FEED_COLUMNS); a row read slim or from a hint holds none of them.
    feed_events: Mapping[int, str] = field(default_factory=dict)
    # Channel fallback (shared.services.fallback): the ends this message falls back on (comma-separated
    # `FallbackTrigger` values; absent without a fallback), the id of the message sent in its place once
    # created, and on that message the id of the one it replaces.
    fallback_on: str | None = None
    fallback_id: str | None = None
    fallback_of: str | None = None

    @property
    def channel(self) -> Channel:
        return Channel(self.channel_name)

    @property
    def delivery(self) -> DeliveryMode:
        return DeliveryMode(self.delivery_mode or DeliveryMode.AT_MOST_ONCE)

    @property
    def sent_at(self) -> str | None:
        return self.times.get(Status.SENT)

    @property
    def status_time(self) -> str:
        return self.status_event_time or ""

    def moved_to(self, status: Status, at: str, **changes: Any) -> LedgerRow:
        """This row moved to `status` at `at` (the status's own time and UpdatedAt), plus `changes`."""
        return replace(self, status=status, times={**self.times, status: at}, updated_at=at, **changes)

    # -- the entity ---------------------------------------------------------------------------------

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any], etag: str = "") -> LedgerRow:
        values: dict[str, Any] = {}
        for attr, column, convert, blank_is_absent in _READERS:
            value = entity.get(column)
            if value is None or (blank_is_absent and value == ""):
                continue
            values[attr] = convert(value) if convert else value
        times = {s: str(entity[c]) for s, c in _STATUS_COLUMNS if entity.get(c)}
        return cls(
            message_id=str(entity["PartitionKey"]),
            status=Status(entity["Status"]),
            etag=etag,
            times=times,
            payload=join_payload(entity),
            feed_events=feed_events_of(entity),
            **values,
        )

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": self.message_id,
            "RowKey": ledger_row_key(self.message_id),
            "Status": self.status.value,
        }
        for attr, column in _LEDGER_COLUMNS:
            value = getattr(self, attr)
            if value is not None and not (value == 0 and attr in _ZERO_IS_ABSENT):
                entity[column] = value
        for status, at in self.times.items():
            entity[_STATUS_COLUMN[status]] = at
        if self.payload is not None:
            entity |= split_payload(self.payload)
        for sequence, event_json in self.feed_events.items():
            entity[feed_column(sequence)] = event_json
        return entity

    def slim(self) -> LedgerRow:
        """Only the columns a per-process cache keeps (SLIM_COLUMNS and the Sent time)."""
        kept = {attr: getattr(self, attr) for attr in SLIM_COLUMNS}
        return LedgerRow(message_id=self.message_id, etag=self.etag, times=self.times, **kept)

    def get(self, column: str, default: Any = None) -> Any:
        """A column by its stored name (for tools and tests that read rows as stored)."""
        return self.to_entity().get(column, default)

    @property
    def entity(self) -> dict[str, Any]:
        return self.to_entity()


def changed_columns(before: LedgerRow, after: LedgerRow) -> dict[str, Any]:
    """The columns to merge to turn `before` into `after`. A payload that shrank or was removed also
    blanks the chunks it no longer uses (a merge leaves absent properties as they were)."""
    old, new = before.to_entity(), after.to_entity()
    changed = {k: v for k, v in new.items() if old.get(k) != v}
    changed |= {k: "" for k in old if k not in new and _is_payload_chunk(k)}
    return changed


def _is_payload_chunk(column: str) -> bool:
    return column.startswith("Payload") and column[len("Payload") :].isdigit()


def payload_columns(row_entity: Mapping[str, Any]) -> list[str]:
    """The payload chunk columns an entity holds (for tools that blank them)."""
    return [k for k in row_entity if _is_payload_chunk(k)]


# -- the other rows ---------------------------------------------------------------------------------


def event_entity(message_id: str, event: AcsEvent, received_at: str) -> dict[str, Any]:
    """An event's row in its message's history (beside the ledger row, same partition)."""
    return {
        "PartitionKey": message_id,
        "RowKey": event.key,
        "Kind": event.kind.value,
        "EventType": event.event_type,
        "RawStatus": event.raw_status,
        "Status": event.status.value if event.status else None,
        "EventTime": event.event_time,
        "ProviderMessageId": event.provider_message_id,
        "Detail": event.detail,
        "ReceivedAt": received_at,
    }


def conflict_entity(message_id: str, digest: str, source: str, at: str) -> dict[str, Any]:
    """The trace a refused request (a different request under a used id) leaves in the message's history."""
    return {
        "PartitionKey": message_id,
        "RowKey": f"conflict|{digest}",
        "Kind": "conflict",
        "EventType": "IdReused",
        "EventTime": at,
        "ReceivedAt": at,
        "Source": source,
        "PayloadHash": digest,
        "Detail": "a different request arrived under this id; it was not sent",
    }


@dataclass(frozen=True)
class HistoryRow:
    """A row of a message's history as the status API shows it."""

    event_type: str | None
    status: str | None
    raw_status: str | None
    event_time: str | None
    detail: str | None
    kind: str | None

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> HistoryRow:
        return cls(
            entity.get("EventType"),
            entity.get("Status"),
            entity.get("RawStatus"),
            entity.get("EventTime"),
            entity.get("Detail"),
            entity.get("Kind"),
        )


def inbound_entity(event: AcsEvent, sender_hash: str, sender_masked: str, keyword: str | None) -> dict[str, Any]:
    """An inbound message, under the keyed hash of its sender (never the raw address)."""
    return {
        "PartitionKey": f"{event.channel.value}|{sender_hash}",
        "RowKey": event.key,
        "From": sender_masked,
        "To": event.recipient,
        "Keyword": keyword,
        "MessageType": event.detail,
        "ReceivedAt": event.event_time,
        "ProviderMessageId": event.provider_message_id,
    }


SERVICE_WINDOW_PREFIX = "window|"


@dataclass(frozen=True)
class ServiceWindowRow:
    """When a WhatsApp user last wrote to one of our channels: the 24-hour customer service window
    opens then. It sits in the inbound table in a partition of its own next to that user's messages
    (`window|whatsapp|<keyed hash>`, never the raw number; queries of their messages do not see it),
    one row per channel registration id."""

    sender_hash: str
    channel_id: str
    last_inbound_at: str

    @staticmethod
    def keys(sender_hash: str, channel_id: str) -> tuple[str, str]:
        return f"{SERVICE_WINDOW_PREFIX}whatsapp|{sender_hash}", f"{SERVICE_WINDOW_PREFIX}{channel_id}"

    def to_entity(self) -> dict[str, Any]:
        partition, row_key = self.keys(self.sender_hash, self.channel_id)
        return {"PartitionKey": partition, "RowKey": row_key, "LastInboundAt": self.last_inbound_at}

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> ServiceWindowRow:
        partition, row_key = keys_of(entity)
        return cls(
            partition.rsplit("|", 1)[1], row_key[len(SERVICE_WINDOW_PREFIX) :], str(entity.get("LastInboundAt", ""))
        )


@dataclass(frozen=True)
class OrphanRow:
    """A status parked until its message is known: the normalised event as JSON, and when it was parked."""

    provider_message_id: str
    key: str
    event_json: str
    parked_at: str
    channel: str

    def to_entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": self.provider_message_id,
            "RowKey": self.key,
            "Event": self.event_json,
            "ParkedAt": self.parked_at,
            "Channel": self.channel,
        }

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> OrphanRow:
        return cls(
            str(entity["PartitionKey"]),
            str(entity["RowKey"]),
            str(entity.get("Event", "")),
            str(entity.get("ParkedAt", "")),
            str(entity.get("Channel", "")),
        )


@dataclass(frozen=True)
class ProviderIdRow:
    """provider id → message id; a placeholder (no message id yet) marks a status waiting for its send."""

    provider_message_id: str
    channel: str
    message_id: str | None = None

    def to_entity(self) -> dict[str, Any]:
        partition, row_key = provider_id_keys(self.provider_message_id)
        entity = {"PartitionKey": partition, "RowKey": row_key, "Channel": self.channel}
        return entity | ({"MessageId": self.message_id} if self.message_id else {})

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> ProviderIdRow:
        message_id = entity.get("MessageId")
        return cls(str(entity["PartitionKey"]), str(entity.get("Channel", "")), str(message_id) if message_id else None)


REJECTED_EVENTS_PARTITION = "rejected-events"
REJECTED_EVENTS_BEFORE_FILTER = "PartitionKey eq @pk and At lt @before"


def rejected_events_before(at: str) -> dict[str, str]:
    """The parameters of REJECTED_EVENTS_BEFORE_FILTER: rejected events recorded before `at`."""
    return {"pk": REJECTED_EVENTS_PARTITION, "before": at}


def rejected_event_entity(
    digest: str, reason: str, event_type: str, event_id: str, at: str, payload: str, kept: str
) -> dict[str, Any]:
    """A malformed event, once (RowKey: a hash of its content), with as much of its payload as a row holds."""
    return {
        "PartitionKey": REJECTED_EVENTS_PARTITION,
        "RowKey": digest,
        "Reason": reason,
        "EventType": event_type,
        "EventId": event_id,
        "At": at,
        "PayloadChars": len(payload),
        "PayloadTruncated": len(kept) < len(payload),
        **split_payload(kept),
    }


# -- the status feed's outbox -----------------------------------------------------------------------

# A message's events are columns of its ledger row (`Feed00001`, ...): the write of the transition and
# of its event is then one single-entity write, atomic without an entity-group transaction and without
# an entity per event (measured on Azurite: a merge with the event column costs what a plain merge does;
# the transaction with an outbox row, 1.6 times that). A row holds at most 252 properties and 1 MiB, so
# only the first FEED_COLUMNS events of up to FEED_COLUMN_CHARS each ride on it (400 KB at most, beside
# a payload of at most 60,000 characters); the rest (operator replays of a long-failing message, metadata
# that JSON escapes to many times its length) are rows of their own beside it, in a transaction with
# the ledger write. A reader finds them by the gap: fewer columns than the row's FeedSequence.
FEED_COLUMNS = 50
FEED_COLUMN_CHARS = 4000
FEED_COLUMN_PREFIX = "Feed"
OUTBOX_PREFIX = "feed|"
# Every outbox row of a partition, and nothing else (`|` sorts right before `}`).
OUTBOX_ROWS_FILTER = f"{PARTITION_FILTER} and RowKey ge 'feed|' and RowKey lt 'feed}}'"


def feed_column(sequence: int) -> str:
    return f"{FEED_COLUMN_PREFIX}{sequence:05d}"


def feed_events_of(entity: Mapping[str, Any]) -> dict[int, str]:
    """The status-feed events a ledger entity holds in its columns, by sequence: looked up by name up
    to the row's FeedSequence (never past FEED_COLUMNS), not found by scanning every column. A missing
    column in that range is an event stored as a row of its own."""
    last = min(int(entity.get("FeedSequence") or 0), FEED_COLUMNS)
    columns = ((sequence, entity.get(feed_column(sequence))) for sequence in range(1, last + 1))
    return {sequence: str(value) for sequence, value in columns if value}


@dataclass(frozen=True)
class OutboxRow:
    """A status-feed event, written with the transition it reports: a column of the ledger row
    (`inline`), or past FEED_COLUMNS a row of its own in the message's partition. It stays as the
    message's feed history, for replays, until retention. Whether it was published is kept by its
    intent (`shared.services.outbox`), not on the row: marking rows costs a write per message."""

    message_id: str
    sequence: int
    event_json: str

    @property
    def inline(self) -> bool:
        """Stored as a column of the ledger row (else as a row of its own)."""
        return self.sequence <= FEED_COLUMNS and len(self.event_json) <= FEED_COLUMN_CHARS

    def to_entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": self.message_id,
            "RowKey": f"{OUTBOX_PREFIX}{self.sequence:010d}",
            "Event": self.event_json,
        }

    @property
    def keys(self) -> tuple[str, str]:
        entity = self.to_entity()
        return str(entity["PartitionKey"]), str(entity["RowKey"])

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> OutboxRow:
        row_key = str(entity["RowKey"])
        return cls(str(entity["PartitionKey"]), int(row_key[len(OUTBOX_PREFIX) :]), str(entity.get("Event", "")))


FEED_HEALTH_PARTITION = "feed-health"


@dataclass(frozen=True)
class FeedHealthRow:
    """The status feed's last publish failure (the CLI's `feed status` shows it)."""

    at: str
    reason: str

    def to_entity(self) -> dict[str, Any]:
        return {"PartitionKey": FEED_HEALTH_PARTITION, "RowKey": "last-error", "At": self.at, "Reason": self.reason}

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> FeedHealthRow:
        return cls(str(entity.get("At", "")), str(entity.get("Reason", "")))

    @staticmethod
    def keys() -> tuple[str, str]:
        return FEED_HEALTH_PARTITION, "last-error"


def changed_since_filter() -> str:
    """Ledger rows changed at or after @since (an operator's scan: replays of the status feed)."""
    return f"{LEDGER_ROWS_FILTER} and UpdatedAt ge @since"


# -- operator and housekeeping rows -----------------------------------------------------------------


def audit_entity(*, at: str, entry_id: str, actor: str, action: str, subject: str, reason: str) -> dict[str, Any]:
    """One audit entry: who did what, to which subject, and why (RowKey `<at>|<entry id>`: time order)."""
    return {
        "PartitionKey": AUDIT_PARTITION,
        "RowKey": f"{at}|{entry_id}",
        "Actor": actor,
        "Action": action,
        "Subject": subject,
        "Reason": reason,
        "At": at,
    }


def pause_entity(target: str, actor: str, reason: str, at: str) -> dict[str, Any]:
    """A pause switch: `target` (a channel or a sender identity) is paused until its row is deleted."""
    return {"PartitionKey": PAUSE_PARTITION, "RowKey": target, "Actor": actor, "Reason": reason, "At": at}


def raw_dead_letter_entity(queue_message_id: str, reason: str, at: str, body: bytes) -> dict[str, Any]:
    """A poisoned queue message that matched no ledger row, kept verbatim under its queue message id."""
    return {
        "PartitionKey": RAW_PARTITION,
        "RowKey": queue_message_id,
        "Reason": reason,
        "At": at,
        "Replayed": False,
        **verbatim_payload(body),
    }


@dataclass(frozen=True)
class RawDeadLetter:
    """A dead letter kept verbatim, as read back: its text is the payload as stored (see `verbatim_text`)."""

    queue_message_id: str
    reason: str
    at: str
    text: str | None = None

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> RawDeadLetter:
        return cls(row_key_of(entity), str(entity.get("Reason", "")), str(entity.get("At", "")), join_payload(entity))


@dataclass(frozen=True)
class ConsentRow:
    """The latest consent state of one address (its partition) for one sender (RowKey, or `*`)."""

    partition: str
    sender: str
    state: str
    reason: str = ""
    actor: str = ""
    updated_at: str = ""

    def to_entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": self.partition,
            "RowKey": self.sender,
            "State": self.state,
            "Reason": self.reason,
            "Actor": self.actor,
            "UpdatedAt": self.updated_at,
        }

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> ConsentRow:
        return cls(
            str(entity["PartitionKey"]),
            str(entity["RowKey"]),
            str(entity.get("State", "")),
            str(entity.get("Reason", "")),
            str(entity.get("Actor", "")),
            str(entity.get("UpdatedAt", "")),
        )


@dataclass(frozen=True)
class DueRow:
    """An entry of a due index: a check of `kind` on `message_id`, due at `due_at` (see `due_row_key`)."""

    partition: str
    row_key: str
    message_id: str
    kind: str
    due_at: str

    @classmethod
    def new(cls, partition: str, message_id: str, kind: str, due_at: str, holder: str = "") -> DueRow:
        """With `holder`, an entry of one process's own (the status feed's intents), apart from other
        processes' entries for the same message, kind and time."""
        row_key = due_row_key(due_at, message_id, kind) + (f"|{holder}" if holder else "")
        return cls(partition, row_key, message_id, kind, due_at)

    def to_entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": self.partition,
            "RowKey": self.row_key,
            "MessageId": self.message_id,
            "Kind": self.kind,
            "DueAt": self.due_at,
        }

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> DueRow:
        partition, row_key = keys_of(entity)
        return cls(partition, row_key, str(entity["MessageId"]), str(entity["Kind"]), str(entity["DueAt"]))


@dataclass(frozen=True)
class ReportRow:
    """One reconcile run's summary: its actions, and the cohort (`<channel>|<status>` counts) of the
    messages whose SLA closed in it; the counters are stored as JSON text."""

    at: str
    actions: Mapping[str, int] = field(default_factory=dict)
    cohort: Mapping[str, int] = field(default_factory=dict)
    cohort_size: int = 0
    reported: int = 0
    latency_p50_ms: int | None = None
    latency_p95_ms: int | None = None
    poison_depth: int = 0
    orphans_matched: int = 0
    orphans_given_up: int = 0
    # Estimated ACS fees (USD) per cohort key; fallback chains whose last message closed in the run, by
    # `<first channel>><next channel>...|<last status>`, with the chains' fees summed over their messages.
    costs: Mapping[str, float] = field(default_factory=dict)
    chains: Mapping[str, int] = field(default_factory=dict)
    chain_costs: Mapping[str, float] = field(default_factory=dict)

    def to_entity(self) -> dict[str, Any]:
        return {
            "Costs": json.dumps(dict(self.costs)),
            "Chains": json.dumps(dict(self.chains)),
            "ChainCosts": json.dumps(dict(self.chain_costs)),
            "PartitionKey": REPORT_PARTITION,
            "RowKey": self.at,
            "Actions": json.dumps(dict(self.actions)),
            "Cohort": json.dumps(dict(self.cohort)),
            "CohortSize": self.cohort_size,
            "Reported": self.reported,
            "LatencyP50Ms": self.latency_p50_ms,
            "LatencyP95Ms": self.latency_p95_ms,
            "PoisonDepth": self.poison_depth,
            "OrphansMatched": self.orphans_matched,
            "OrphansGivenUp": self.orphans_given_up,
        }

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> ReportRow:
        return cls(
            at=row_key_of(entity),
            actions=json.loads(entity.get("Actions") or "{}"),
            cohort=json.loads(entity.get("Cohort") or "{}"),
            cohort_size=int(entity.get("CohortSize") or 0),
            reported=int(entity.get("Reported") or 0),
            latency_p50_ms=_int_or_none(entity.get("LatencyP50Ms")),
            latency_p95_ms=_int_or_none(entity.get("LatencyP95Ms")),
            poison_depth=int(entity.get("PoisonDepth") or 0),
            orphans_matched=int(entity.get("OrphansMatched") or 0),
            orphans_given_up=int(entity.get("OrphansGivenUp") or 0),
            costs=json.loads(entity.get("Costs") or "{}"),
            chains=json.loads(entity.get("Chains") or "{}"),
            chain_costs=json.loads(entity.get("ChainCosts") or "{}"),
        )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
