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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, TypeVar

from shared.adapters.tables import Op, TableStore
from shared.claimcheck import reference_body
from shared.clock import iso, parse_iso
from shared.errors import Conflict, EtagMismatch, IdReused, TransientError, ValidationFailed
from shared.ids import repeatability_id
from shared.ledger_cache import RowCache
from shared.models import AnyRequest, Status
from shared.privacy import address_hash, mask
from shared.schema import (
    SLIM_SELECT,
    LedgerRow,
    OutboxRow,
    changed_columns,
    ledger_row_key,
    row_key_entity,
    without_keys,
)
from shared.validation import CheckedRequest, load_json

MAX_RACE_RETRIES = 8
T = TypeVar("T")


class TransitionHook(Protocol):
    """Work that rides on the ledger's transitions (the status feed's outbox, channel fallback), in the
    outbox's pattern, around every write of a ledger row:
    1. `stamp`: the row as the hook marks it (what rides on the row's own columns is in the same
       single-entity write), and its rows; those not `inline` are created in the same entity-group
       transaction;
    2. `before_write`: awaited before the write, the intent a sweep finds if the process dies after the
       commit (so the work is never lost, only late);
    3. `after_commit`: hand the work on (in the background) once the write has committed;
       `after_failure` instead when it raised, with whether it may have committed all the same (a
       timeout may hide a commit; a 409 or 412 is the service saying it did not)."""

    def stamp(self, before: LedgerRow | None, after: LedgerRow) -> tuple[LedgerRow, list[OutboxRow]]: ...

    async def before_write(self, before: LedgerRow | None, after: LedgerRow, rows: Sequence[OutboxRow]) -> None: ...

    def after_commit(self, before: LedgerRow | None, after: LedgerRow, rows: Sequence[OutboxRow]) -> None: ...

    def after_failure(self, after: LedgerRow, rows: Sequence[OutboxRow], *, may_have_committed: bool) -> None: ...


@dataclass(frozen=True)
class _Staged:
    """One write as the hooks staged it: the row to write, and each hook's rows (in the hooks' order)."""

    before: LedgerRow | None
    after: LedgerRow
    rows: tuple[list[OutboxRow], ...]

    @property
    def creates(self) -> list[Op]:
        """The rows to create beside the ledger row (an event past the row's own columns)."""
        return [Op("create", row.to_entity()) for rows in self.rows for row in rows if not row.inline]


def delivery_latency_ms(sent_at: str, reported_at: str) -> float:
    """From the send to the report that it arrived. A float (Edm.Double): an int over 2^31 ms would not
    fit Table Storage's default Int32. Never negative: a report can beat the send's own record of it."""
    latency = parse_iso(reported_at) - parse_iso(sent_at)
    return max(0.0, round(latency.total_seconds() * 1000, 1))


def transition_fields(status: Status, now: datetime, **extra: Any) -> dict[str, Any]:
    """The columns that record a move to `status` at `now`, for tools that write entities directly
    (the benchmark's seeding)."""
    return without_keys(LedgerRow(message_id="-", status=status).moved_to(status, iso(now)).to_entity()) | extra


class Ledger:
    """Reads and writes ledger rows in the messages table: insert-if-absent, etag-guarded changes.

    Behind it, a per-process cache (`RowCache`) of recent rows and one writer at a time per row;
    callers see it only through `hint` and the `slim` option of `change`."""

    def __init__(
        self, table: TableStore, hash_key: bytes, hint_capacity: int = 20_000, hooks: Sequence[TransitionHook] = ()
    ) -> None:
        self._table = table
        self._hash_key = hash_key
        self._cache = RowCache(hint_capacity)
        self._hooks = tuple(hooks)

    def writing(self, message_id: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold this process's turn on the row across several calls (re-entrant; see RowCache.turn)."""
        return self._cache.turn(message_id)

    def _remember(self, row: LedgerRow) -> LedgerRow:
        self._cache.put(row)
        return row

    def hint(self, message_id: str) -> LedgerRow | None:
        """The last state this process knows of a message (slim: SLIM_COLUMNS only), for an etag-guarded
        write only (may be stale)."""
        return self._cache.get(message_id)

    async def get(self, message_id: str, *, slim: bool = False) -> LedgerRow | None:
        """The message's ledger row as stored; with `slim`, only its SLIM_COLUMNS (what a slim change
        decides on: no payload, no feed history)."""
        stored = await self._table.get(message_id, ledger_row_key(message_id), SLIM_SELECT if slim else None)
        return None if stored is None else self._remember(LedgerRow.from_entity(stored.entity, stored.etag))

    def new_row(
        self,
        checked: CheckedRequest,
        payload: str,
        now: datetime,
        source: str,
        payload_ref: str | None = None,
        *,
        claim: bool = False,
    ) -> LedgerRow:
        """The Accepted row; with `claim`, the row already claimed for its first send (Sending,
        generation 1), so that a request that passed every check costs one write, not an insert and an
        update. A request too large to keep inline is referenced by its blob name."""
        request = checked.request
        row = LedgerRow(
            message_id=checked.message_id,
            status=Status.ACCEPTED,
            channel_name=request.channel.value,
            purpose=request.purpose.value,
            delivery_mode=request.delivery.value,
            sender=checked.sender,
            recipient_masked=mask(request.to),
            recipient_hash=address_hash(self._hash_key, request.to),
            segments=checked.segments,
            correlation_id=request.correlation_id,
            metadata=json.dumps(request.metadata) if request.metadata else None,
            fallback_on=",".join(request.fallback_triggers) or None,
            expires_at=iso(request.expires_at) if request.expires_at else None,
            created_at=iso(now),
            source=source,
            payload_hash=self.payload_hash(payload),
            payload_ref=payload_ref,
            payload=None if payload_ref else payload,
        ).moved_to(Status.ACCEPTED, iso(now))
        return claimed(row, now, generation=1) if claim else row

    def payload_hash(self, payload: str) -> str:
        """A keyed digest of the request as stored: it tells a repeat of a request from a different
        request under the same id, and outlives the content (keyed, so no one can test guesses of it)."""
        return hmac.new(self._hash_key, payload.encode(), hashlib.sha256).hexdigest()[:32]

    async def accept(self, new_row: LedgerRow, payload: str) -> tuple[LedgerRow, bool]:
        """Insert the row if absent; returns the row as stored and whether this call wrote it. A Rejected
        row gives way to a valid request under its id; a row holding a different request raises IdReused
        (the id is the idempotency key: the first request under it is the one that counts)."""
        try:
            new_row, etag = await self._insert(new_row)
        except Conflict:
            existing = await self.get(new_row.message_id)
            if existing is None:
                raise TransientError("ledger row vanished during insert") from None
        else:
            return self._remember(replace(new_row, etag=etag)), True
        if existing.status == Status.REJECTED:  # replaced whole: nothing of the rejection stays but its feed
            kept = replace(new_row, etag=existing.etag, feed_events=existing.feed_events)
            return await self.update(existing, kept, whole=True), True
        # Rows from before the digest was kept hold none, and never conflict.
        if existing.payload_hash and existing.payload_hash != self.payload_hash(payload):
            raise IdReused(new_row.message_id, existing.payload_ref, payload)
        return existing, False

    async def record_history(self, entity: Mapping[str, Any]) -> None:
        """Insert a row beside the ledger row in the message's history (built by `shared.schema`).
        Raises Conflict when that row exists."""
        await self._table.insert(entity)

    async def record_rejected(self, row: LedgerRow) -> bool:
        """Insert a row for a request that never became valid; False if the id already exists."""
        try:
            await self._insert(row)
        except Conflict:
            return False
        return True

    async def _insert(self, row: LedgerRow) -> tuple[LedgerRow, str]:
        """Insert a new row (Conflict if it exists), with what the hooks add to the transition."""
        staged = await self._staged(None, row)
        creates = staged.creates
        if not creates:
            etag = await self._commit(staged, self._table.insert(staged.after.to_entity()))
        else:
            etags = await self._commit(staged, self._table.transact([Op("create", staged.after.to_entity()), *creates]))
            etag = etags[0]
        return staged.after, etag

    async def _staged(self, before: LedgerRow | None, after: LedgerRow) -> _Staged:
        """`after` as every hook stamped it, with their rows; each hook's intent is written first, so a
        crash after the commit leaves its sweep something to find."""
        rows = []
        for hook in self._hooks:
            after, hook_rows = hook.stamp(before, after)
            rows.append(hook_rows)
        staged = _Staged(before, after, tuple(rows))
        for hook, hook_rows in zip(self._hooks, staged.rows, strict=True):
            await hook.before_write(before, staged.after, hook_rows)
        return staged

    async def _commit(self, staged: _Staged, write: Awaitable[T]) -> T:
        """Await the write, then tell each hook how it went."""
        try:
            result = await write
        except BaseException as error:
            uncertain = not isinstance(error, Conflict | EtagMismatch)
            for hook, rows in zip(self._hooks, staged.rows, strict=True):
                hook.after_failure(staged.after, rows, may_have_committed=uncertain)
            raise
        for hook, rows in zip(self._hooks, staged.rows, strict=True):
            hook.after_commit(staged.before, staged.after, rows)
        return result

    async def update(self, row: LedgerRow, changed: LedgerRow, *, whole: bool = False) -> LedgerRow:
        """Write `changed` over `row` if the row is unchanged since `row` was read (EtagMismatch
        otherwise): the columns that differ, or with `whole` the entire row in place of the stored one."""
        staged = await self._staged(row, changed)
        changed, creates = staged.after, staged.creates
        key = row_key_entity(row.message_id, ledger_row_key(row.message_id))
        entity = changed.to_entity() if whole else {**key, **changed_columns(row, changed)}
        kind = "replace" if whole else "merge"
        if creates:
            etag = (await self._commit(staged, self._table.transact([Op(kind, entity, etag=row.etag), *creates])))[0]
        else:
            etag = await self._commit(staged, self._table.update(entity, row.etag, replace=whole))
        return self._remember(replace(changed, etag=etag))

    async def change(
        self,
        message_id: str,
        decide: Callable[[LedgerRow], LedgerRow | None],
        *,
        alongside: Mapping[str, Any] | None = None,
        start: LedgerRow | None = None,
        slim: bool = False,
    ) -> LedgerRow | None:
        """Read-decide-write until it sticks, one writer at a time in this process. `decide` returns the
        changed row, or None for no change. `alongside`: a history row inserted in the same
        entity-group transaction (Conflict if it exists: the change was recorded before). With `slim`,
        `decide` reads only SLIM_COLUMNS, so the first decision may use the newest state this process
        knows, or `start`, without a read; the etag guards it.
        Returns the row after the change (or as read when nothing changed); None if there is no row."""
        row = start
        for _ in range(MAX_RACE_RETRIES):
            async with self._cache.turn(message_id):
                if slim:
                    row = self.hint(message_id) or row
                row = row or await self.get(message_id, slim=slim)
                if row is None:
                    return None
                try:
                    return await self._write(row, decide(row), alongside)
                except EtagMismatch:
                    self._cache.discard(message_id)  # another instance wrote the row: read it again
                    row = None
        raise TransientError(f"ledger row {message_id} kept changing; giving up for now")

    async def _write(self, row: LedgerRow, changed: LedgerRow | None, alongside: Mapping[str, Any] | None) -> LedgerRow:
        if alongside is None:
            return await self.update(row, changed) if changed is not None else row
        if changed is None:
            # Nothing changes in the ledger: a plain insert, without the multipart body of a batch,
            # which costs the SDK several times a single request.
            await self._table.insert(alongside)
            return row
        staged = await self._staged(row, changed)
        changed = staged.after
        key = row_key_entity(row.message_id, ledger_row_key(row.message_id))
        merge = Op("merge", {**key, **changed_columns(row, changed)}, etag=row.etag)
        ops = [Op("create", dict(alongside)), merge, *staged.creates]
        etags = await self._commit(staged, self._table.transact(ops))
        # Keep the new etag, so the next change of this message needs no read either.
        if len(etags) >= 2 and etags[1]:
            return self._remember(replace(changed, etag=etags[1]))
        self._cache.discard(row.message_id)
        return changed


def claimed(row: LedgerRow, now: datetime, *, generation: int | None = None) -> LedgerRow:
    """`row` claimed for its next attempt (Sending): under `generation`'s fresh repeatability id, first
    sent now, or (None) under the row's current ids, so that ACS can deduplicate the resend."""
    at = iso(now)
    row = row.moved_to(Status.SENDING, at, attempts=row.attempts + 1)
    if generation is None:
        return row
    return replace(
        row,
        generation=generation,
        ids_generation=generation,
        repeatability_id=repeatability_id(row.message_id, generation),
        first_sent_at=at,
    )


def queue_body(row: LedgerRow) -> str | None:
    """What to put on the send queue to run this message again: the request, or its blob reference."""
    if row.payload_ref:
        return reference_body(row.message_id, row.payload_ref)
    return row.payload


def canonical_payload(request: AnyRequest, message_id: str) -> str:
    """The request as the ledger stores it: under its message id, in one canonical JSON form."""
    return request.model_copy(update={"id": message_id}).model_dump_json(by_alias=True, exclude_none=True)


def payload_json(row: LedgerRow) -> dict[str, Any] | None:
    text = row.payload
    if text is None:
        return None
    try:
        loaded = load_json(text)
    except ValidationFailed:
        return None  # a rejected request keeps its raw body, which may be anything (10,000 brackets deep)
    return loaded if isinstance(loaded, dict) else None
