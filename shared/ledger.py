"""The message ledger: one row per message, claimed and advanced with etag-guarded updates.

Why etags everywhere: queue delivery is at-least-once, Event Grid is at-least-once and unordered,
and a worker can die at any instant. Every change is read-decide-write with the etag of the read,
retried from a fresh read when someone else got there first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.adapters.tables import TableStore
from shared.cache import Lru
from shared.claimcheck import reference_body
from shared.clock import iso, parse_iso
from shared.errors import Conflict, EtagMismatch, TransientError, ValidationFailed
from shared.models import Channel, DeliveryMode, Status
from shared.privacy import address_hash, mask
from shared.tables import join_payload, ledger_row_key, split_payload
from shared.validation import CheckedRequest, load_json

MAX_RACE_RETRIES = 8


def delivery_latency_ms(sent_at: str, reported_at: str) -> float:
    """From the send to the report that it arrived. A float (Edm.Double): an int over 2^31 ms would not
    fit Table Storage's default Int32. Never negative: a report can beat the send's own record of it."""
    latency = parse_iso(reported_at) - parse_iso(sent_at)
    return max(0.0, round(latency.total_seconds() * 1000, 1))


@dataclass(frozen=True)
class LedgerRow:
    """A read of the ledger row with the etag that guards the next change."""

    entity: Mapping[str, Any]
    etag: str

    @property
    def message_id(self) -> str:
        return str(self.entity["PartitionKey"])

    @property
    def status(self) -> Status:
        return Status(self.entity["Status"])

    @property
    def channel(self) -> Channel:
        return Channel(self.entity["Channel"])

    @property
    def attempts(self) -> int:
        return int(self.entity.get("Attempts", 0))

    @property
    def generation(self) -> int:
        return int(self.entity.get("Generation", 0))

    @property
    def delivery(self) -> DeliveryMode:
        return DeliveryMode(self.entity.get("Delivery", DeliveryMode.AT_MOST_ONCE))

    def get(self, name: str, default: Any = None) -> Any:
        return self.entity.get(name, default)

    @property
    def payload(self) -> str | None:
        return join_payload(dict(self.entity))

    @property
    def payload_ref(self) -> str | None:
        return str(self.entity.get("PayloadRef") or "") or None

    @property
    def queue_body(self) -> str | None:
        """What to put on the send queue to run this message again: the request, or its blob reference."""
        if self.payload_ref:
            return reference_body(self.message_id, self.payload_ref)
        return self.payload

    @property
    def status_time(self) -> str:
        return str(self.entity.get("StatusEventTime", ""))


def transition_fields(status: Status, now: datetime, **extra: Any) -> dict[str, Any]:
    """The fields that record a move to `status` at `now` (one timestamp per status)."""
    stamp = iso(now)
    return {"Status": status.value, f"{status.value}At": stamp, "UpdatedAt": stamp, **extra}


# The fields the event projection needs; the etag cache keeps only these (a few hundred bytes a row).
_HINT_FIELDS = (
    "PartitionKey",
    "Status",
    "StatusEventTime",
    "ProviderMessageId",
    "SentAt",
    "DeliveryLatencyMs",
    "Channel",
    "CreatedAt",
)


class _RowWriters:
    """The lock on one row's writes in this instance, and how many are holding or waiting for it."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class Ledger:
    """Reads and writes ledger rows in the messages table.

    It remembers the last row it read or wrote per message (bounded): the instance that sent a
    message usually records its report too, and with the remembered etag the report's transaction
    needs no read. A stale hint fails the etag check and the caller reads again.
    """

    def __init__(self, table: TableStore, hash_key: bytes, hint_capacity: int = 20_000) -> None:
        self._table = table
        self._hash_key = hash_key
        self._hints: Lru[str, LedgerRow] = Lru(hint_capacity)
        self._writers: dict[str, _RowWriters] = {}

    @contextlib.asynccontextmanager
    async def writing(self, message_id: str) -> AsyncIterator[None]:
        """Take turns with this instance's other writers of the same row. A report racing the send's
        Sent write, or two reports of one message, would otherwise present the same etag, and the loser
        would pay a failed write and a read. Inside, `hint()` is the newest state this instance knows.
        Other instances still meet at the etag check. Not re-entrant."""
        writers = self._writers.setdefault(message_id, _RowWriters())
        writers.users += 1
        try:
            async with writers.lock:
                yield
        finally:
            writers.users -= 1
            if not writers.users:
                del self._writers[message_id]

    def _remember(self, row: LedgerRow) -> LedgerRow:
        slim = {k: row.entity[k] for k in _HINT_FIELDS if k in row.entity}
        self._hints.put(row.message_id, LedgerRow(slim, row.etag))
        return row

    def hint(self, message_id: str) -> LedgerRow | None:
        """The last known state of a message, for an etag-guarded write only (may be stale)."""
        return self._hints.get(message_id)

    def forget(self, message_id: str) -> None:
        self._hints.discard(message_id)

    def remember_write(self, row: LedgerRow, fields: Mapping[str, Any], etag: str) -> None:
        """Someone else (an entity-group transaction) wrote `fields` over `row`; keep the new state."""
        if etag:
            self._remember(LedgerRow({**row.entity, **fields}, etag))
        else:
            self.forget(row.message_id)

    async def get(self, message_id: str) -> LedgerRow | None:
        stored = await self._table.get(message_id, ledger_row_key(message_id))
        return None if stored is None else self._remember(LedgerRow(stored.entity, stored.etag))

    def new_row(
        self, checked: CheckedRequest, payload: str, now: datetime, source: str, payload_ref: str | None = None
    ) -> dict[str, Any]:
        """The Accepted row. A request too large to keep inline is referenced by its blob name."""
        request = checked.request
        return {
            "PartitionKey": checked.message_id,
            "RowKey": ledger_row_key(checked.message_id),
            "Channel": request.channel.value,
            "Purpose": request.purpose.value,
            "Delivery": request.delivery.value,
            "Sender": checked.sender,
            "RecipientMasked": mask(request.to),
            "RecipientHash": address_hash(self._hash_key, request.to),
            "Segments": checked.segments,
            "CorrelationId": request.correlation_id,
            "ExpiresAt": iso(request.expires_at) if request.expires_at else None,
            "Attempts": 0,
            "Generation": 0,
            "CreatedAt": iso(now),
            "Source": source,
            "PayloadHash": self.payload_hash(payload),
            **({"PayloadRef": payload_ref} if payload_ref else split_payload(payload)),
            **transition_fields(Status.ACCEPTED, now),
        }

    def payload_hash(self, payload: str) -> str:
        """A keyed digest of the request as stored: it tells a repeat of a request from a different
        request under the same id, and outlives the content (keyed, so no one can test guesses of it)."""
        return hmac.new(self._hash_key, payload.encode(), hashlib.sha256).hexdigest()[:32]

    def reused_for_another_request(self, row: LedgerRow, payload: str) -> bool:
        """Does the stored row hold a different request than `payload`? Rows from before the digest
        was kept, and Rejected rows (never a valid request), hold none and never conflict."""
        stored = row.get("PayloadHash")
        return bool(stored) and row.status != Status.REJECTED and stored != self.payload_hash(payload)

    async def accept(self, row: Mapping[str, Any]) -> tuple[LedgerRow, bool]:
        """Insert the Accepted row if absent. Returns the row as stored and whether it is new."""
        try:
            etag = await self._table.insert(row)
        except Conflict:
            existing = await self.get(str(row["PartitionKey"]))
            if existing is None:
                raise TransientError("ledger row vanished during insert") from None
            return existing, False
        return self._remember(LedgerRow(dict(row), etag)), True

    async def record_history(self, message_id: str, fields: Mapping[str, Any]) -> None:
        """Insert a row beside the ledger row in the message's history (`fields` carry its RowKey).
        Raises Conflict when that row exists."""
        await self._table.insert({"PartitionKey": message_id, **fields})

    async def record_rejected(self, message_id: str, fields: Mapping[str, Any]) -> bool:
        """Insert a row for a request that never became valid; False if the id already exists."""
        try:
            await self._table.insert({"PartitionKey": message_id, "RowKey": ledger_row_key(message_id), **fields})
        except Conflict:
            return False
        return True

    async def update(self, row: LedgerRow, fields: Mapping[str, Any]) -> LedgerRow:
        """Merge `fields` if the row is unchanged since `row` was read (EtagMismatch otherwise)."""
        entity = {"PartitionKey": row.message_id, "RowKey": ledger_row_key(row.message_id), **fields}
        etag = await self._table.update(entity, row.etag)
        return self._remember(LedgerRow({**row.entity, **fields}, etag))

    async def change(
        self, message_id: str, decide: Callable[[LedgerRow], Mapping[str, Any] | None]
    ) -> LedgerRow | None:
        """Read-decide-write until it sticks. `decide` returns the fields to merge, or None for no change.
        Returns the row after the change (or as read when nothing changed); None if there is no row."""
        for _ in range(MAX_RACE_RETRIES):
            row = await self.get(message_id)
            if row is None:
                return None
            fields = decide(row)
            if not fields:
                return row
            try:
                return await self.update(row, fields)
            except EtagMismatch:
                continue
        raise TransientError(f"ledger row {message_id} kept changing; giving up for now")


def payload_json(row: LedgerRow) -> dict[str, Any] | None:
    text = row.payload
    if text is None:
        return None
    try:
        loaded = load_json(text)
    except ValidationFailed:
        return None  # a rejected request keeps its raw body, which may be anything (10,000 brackets deep)
    return loaded if isinstance(loaded, dict) else None
