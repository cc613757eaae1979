"""The message ledger: one row per message, claimed and advanced with etag-guarded updates.

Why etags everywhere: queue delivery is at-least-once, Event Grid is at-least-once and unordered,
and a worker can die at any instant. Every change is read-decide-write with the etag of the read,
retried from a fresh read when someone else got there first.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.adapters.acs import repeatability_id
from shared.adapters.tables import Conflict, EtagMismatch, Op, TableStore
from shared.errors import IdReused, TransientError, ValidationFailed
from shared.ledger_cache import RowCache
from shared.models import AnyRequest, DeliveryMode, Status
from shared.privacy import address_hash, mask
from shared.settings import Channel
from shared.tables import join_payload, ledger_row_key, split_payload
from shared.validation import CheckedRequest, load_json

MAX_RACE_RETRIES = 8


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# The statuses whose report ends the delivery leg that DeliveryLatencyMs measures.
REACHED = frozenset({Status.DELIVERED, Status.READ})


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


class Ledger:
    """Reads and writes ledger rows in the messages table: insert-if-absent, etag-guarded changes.

    Behind it, a per-process cache (`RowCache`) of recent rows and one writer at a time per row:
    callers never see it, except that `change` may decide on a remembered state first (its etag
    guards the write, and a stale one costs a read)."""

    def __init__(self, table: TableStore, hash_key: bytes, hint_capacity: int = 20_000) -> None:
        self._table = table
        self._hash_key = hash_key
        self._cache = RowCache(hint_capacity)

    def writing(self, message_id: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold this process's turn on the row across several calls (re-entrant; see RowCache.turn)."""
        return self._cache.turn(message_id)

    def _remember(self, row: LedgerRow) -> LedgerRow:
        self._cache.put(row.message_id, row.entity, row.etag)
        return row

    def hint(self, message_id: str) -> LedgerRow | None:
        """The last state this process knows of a message, for an etag-guarded write only (may be stale)."""
        cached = self._cache.get(message_id)
        return None if cached is None else LedgerRow(cached.entity, cached.etag)

    async def get(self, message_id: str) -> LedgerRow | None:
        stored = await self._table.get(message_id, ledger_row_key(message_id))
        return None if stored is None else self._remember(LedgerRow(stored.entity, stored.etag))

    def new_row(
        self,
        checked: CheckedRequest,
        payload: str,
        now: datetime,
        source: str,
        payload_ref: str | None = None,
        *,
        claim: bool = False,
    ) -> dict[str, Any]:
        """The Accepted row; with `claim`, the row already claimed for its first send (Sending,
        generation 1), so that a request that passed every check costs one write, not an insert and an
        update. A request too large to keep inline is referenced by its blob name."""
        request = checked.request
        row = {
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
        if claim:
            row |= claim_fields(checked.message_id, now, attempts=1, generation=1)
        return row

    def payload_hash(self, payload: str) -> str:
        """A keyed digest of the request as stored: it tells a repeat of a request from a different
        request under the same id, and outlives the content (keyed, so no one can test guesses of it)."""
        return hmac.new(self._hash_key, payload.encode(), hashlib.sha256).hexdigest()[:32]

    async def accept(self, new_row: Mapping[str, Any], payload: str) -> tuple[LedgerRow, bool]:
        """Insert the row if absent; returns the row as stored and whether this call wrote it. A Rejected
        row gives way to a valid request under its id; a row holding a different request raises IdReused
        (the id is the idempotency key: the first request under it is the one that counts)."""
        message_id = str(new_row["PartitionKey"])
        try:
            etag = await self._table.insert(new_row)
        except Conflict:
            existing = await self.get(message_id)
            if existing is None:
                raise TransientError("ledger row vanished during insert") from None
        else:
            return self._remember(LedgerRow(dict(new_row), etag)), True
        if existing.status == Status.REJECTED:
            return await self.update(existing, {**new_row, "Reason": None, "Errors": None}), True
        stored_hash = existing.get("PayloadHash")  # rows from before the digest was kept hold none
        if stored_hash and stored_hash != self.payload_hash(payload):
            raise IdReused(message_id, existing.get("PayloadRef"), payload)
        return existing, False

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
        self,
        message_id: str,
        decide: Callable[[LedgerRow], Mapping[str, Any] | None],
        *,
        alongside: Mapping[str, Any] | None = None,
        start: LedgerRow | None = None,
        slim: bool = False,
    ) -> LedgerRow | None:
        """Read-decide-write until it sticks, one writer at a time in this process. `decide` returns the
        fields to merge, or None for no change. `alongside`: a history row inserted in the same
        entity-group transaction (Conflict if it exists: the change was recorded before). With `slim`,
        `decide` needs only the cached fields (HINT_FIELDS), so the first decision may use the newest
        state this process knows, or `start`, without a read; the etag guards it.
        Returns the row after the change (or as read when nothing changed); None if there is no row."""
        row = start
        for _ in range(MAX_RACE_RETRIES):
            async with self._cache.turn(message_id):
                if slim:
                    row = self.hint(message_id) or row
                row = row or await self.get(message_id)
                if row is None:
                    return None
                try:
                    return await self._write(row, decide(row), alongside)
                except EtagMismatch:
                    self._cache.discard(message_id)  # another instance wrote the row: read it again
                    row = None
        raise TransientError(f"ledger row {message_id} kept changing; giving up for now")

    async def _write(
        self, row: LedgerRow, fields: Mapping[str, Any] | None, alongside: Mapping[str, Any] | None
    ) -> LedgerRow:
        if alongside is None:
            return await self.update(row, fields) if fields else row
        if not fields:
            # Nothing changes in the ledger: a plain insert, without the multipart body of a batch,
            # which costs the SDK several times a single request.
            await self._table.insert(alongside)
            return row
        key = {"PartitionKey": row.message_id, "RowKey": ledger_row_key(row.message_id)}
        etags = await self._table.transact(
            [Op("create", dict(alongside)), Op("merge", {**key, **fields}, etag=row.etag)]
        )
        # Keep the new etag, so the next change of this message needs no read either.
        changed = LedgerRow({**row.entity, **fields}, etags[-1] if len(etags) == 2 else "")
        if changed.etag:
            return self._remember(changed)
        self._cache.discard(row.message_id)
        return changed


def claim_fields(message_id: str, now: datetime, *, attempts: int, generation: int | None = None) -> dict[str, Any]:
    """The move to Sending for attempt `attempts`; with `generation`, under that generation's fresh
    repeatability id, first sent now (otherwise the row's ids are kept, so ACS can deduplicate)."""
    fields = transition_fields(Status.SENDING, now, Attempts=attempts)
    if generation is not None:
        fields |= {
            "Generation": generation,
            "IdsGeneration": generation,
            "RepeatabilityId": repeatability_id(message_id, generation),
            "FirstSentAt": iso(now),
        }
    return fields


def canonical_payload(request: AnyRequest, message_id: str) -> str:
    """The request as the ledger stores it: under its message id, in one canonical JSON form."""
    return request.model_copy(update={"id": message_id}).model_dump_json(by_alias=True, exclude_none=True)


def payload_blob_name(message_id: str, payload: str) -> str:
    """Where a request too large for a queue message is kept: named by its content as well as its id,
    so that a second, different request under the same id never overwrites the first one's text.
    Producers compute it without any secret, so the digest is a plain one."""
    return f"{message_id}/{hashlib.sha256(payload.encode()).hexdigest()[:32]}.json"


def reference_body(message_id: str, payload_ref: str) -> str:
    """The small queue message that stands for a request kept in blob storage."""
    return json.dumps({"schemaVersion": 1, "id": message_id, "payloadRef": payload_ref})


def payload_json(row: LedgerRow) -> dict[str, Any] | None:
    text = row.payload
    if text is None:
        return None
    try:
        loaded = load_json(text)
    except ValidationFailed:
        return None  # a rejected request keeps its raw body, which may be anything (10,000 brackets deep)
    return loaded if isinstance(loaded, dict) else None
