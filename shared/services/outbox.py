"""The status feed's outbox: every ledger transition published, nothing lost, nothing early (issue 17).

How a transition reaches the topic:
1. Before the ledger write, an intent (a due entry in the `feed` partition, one per message, minute
   and process, written in group commits) says "this message may have unpublished changes".
2. The change's event is written with the transition, in the same write: a column of the ledger row
   (`OutboxRow.inline`), or past the row's limits a row beside it in one entity-group transaction
   (`shared.schema.FEED_COLUMNS`). The event exists exactly when the transition does. The sequence
   number lives on the ledger row, so the etag that guards the write also orders the changes.
3. After the commit the event is handed to the publisher, which sends batches in the background. The
   events stay as the message's feed history, for `replay`, until retention deletes the partition.
4. Once every write under an intent has been published and its minute is over, the process deletes the
   intent, in batches (they share one partition). A write that failed in a way that may have committed
   (a timeout, not a 409 or 412), or whose events failed to publish, keeps its intent.
5. The reconcile timer's sweep reads intents older than a minute (never the messages table as a
   whole), republishes the feed history of those messages, and drops the intents.
A crash anywhere leaves an intent (step 1 came first) and the events (step 2), so step 5 finds them.
Subscribers dedupe by the event id (message id + sequence), which a republished change keeps.

Why the intent, not the ledger row, records "published": marking the row would cost one more write per
message and change; intents share a partition, and a hundred of them go in one transaction. Each
process keys its intents with its own id, so one process retiring its intent never hides another's
unpublished change to the same message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shared.adapters.tables import TableStore
from shared.clock import Clock, iso, parse_iso
from shared.errors import ContactMessagesError
from shared.feed import DEFAULT_SOURCE, StatusChange, cloud_event
from shared.models import Channel, Status
from shared.observability import count, detached_context, emit_warning
from shared.schema import (
    OUTBOX_ROWS_FILTER,
    DueRow,
    FeedHealthRow,
    LedgerRow,
    OutboxRow,
    changed_since_filter,
    ledger_row_key,
)
from shared.services.due import DueIndex, DueKind

log = logging.getLogger(__name__)

FEED_PARTITION = "feed"
CHANNELS = frozenset(c.value for c in Channel)
# An outbox row older than this is assumed orphaned (its process died before publishing it).
REPUBLISH_AFTER = timedelta(minutes=1)
PUBLISH_BATCH = 100
# How long a publish waits for its batch to fill. Without it, each publish took what came in during the
# last one's round trip (13 events on average in the throughput benchmark), and a publish costs the
# process about a millisecond of CPU whatever its size. A fifth of a second is small beside Event
# Grid's own delivery latency, and a subscriber never sees a change before its transition committed.
PUBLISH_LINGER_S = 0.2
SWEEP_CONCURRENCY = 16


class Publisher(Protocol):
    async def publish(self, events: Sequence[str]) -> None: ...  # CloudEvents JSON texts

    async def close(self) -> None: ...


def changes_of(before: LedgerRow | None, after: LedgerRow) -> list[Status]:
    """The statuses a write moves the message through, in order: a new row reports each status it
    holds (Accepted, and Sending when the insert was also the claim); a change, its new status."""
    if before is None:
        return sorted(after.times, key=lambda s: (after.times[s], list(Status).index(s)))
    return [after.status] if after.status != before.status else []


@dataclass(frozen=True)
class FeedStatus:
    pending_messages: int  # messages whose feed the sweep has yet to check
    oldest_pending: str | None  # the earliest such check's due time
    last_error: FeedHealthRow | None


IntentKey = tuple[str, datetime]  # (message id, the minute bucket its intent is due in)


class Outbox:
    def __init__(
        self, messages: TableStore, intents: DueIndex, publisher: Publisher, clock: Clock, source: str
    ) -> None:
        self._messages = messages
        self._intents = intents
        self._health = intents.table
        self._publisher = publisher
        self._now = clock
        self._source = source or DEFAULT_SOURCE
        self._holder = uuid.uuid4().hex[:12]  # this process's part of its intents' keys
        self._pending: list[OutboxRow] = []
        self._flusher: asyncio.Task[None] | None = None
        self._full = asyncio.Event()  # set when a batch's worth is pending: the linger ends early
        self._ledger = _IntentLedger()
        self._retired_minute: datetime | None = None
        self._retirer: asyncio.Task[None] | None = None

    # -- with the ledger write --------------------------------------------------------------------

    def stamp(self, before: LedgerRow | None, after: LedgerRow) -> tuple[LedgerRow, list[OutboxRow]]:
        """`after` with its feed sequence advanced, and the outbox rows of the statuses it moves through."""
        statuses = changes_of(before, after)
        if not statuses or after.channel_name not in CHANNELS:  # a body with no channel reports nothing
            return after, []
        sequence = before.feed_sequence if before is not None else 0
        previous = before.status if before is not None else None
        rows = []
        for status in statuses:
            sequence += 1
            rows.append(OutboxRow(after.message_id, sequence, self._event_json(after, status, previous, sequence)))
            previous = status
        columns = {row.sequence: row.event_json for row in rows if row.inline}
        return replace(after, feed_sequence=sequence, feed_events={**after.feed_events, **columns}), rows

    async def before_write(self, before: LedgerRow | None, after: LedgerRow, rows: Sequence[OutboxRow]) -> None:
        """The ledger's hook (`shared.ledger.TransitionHook`): step 1 for a write that has events."""
        if rows:
            await self.intend(after.message_id, rows)

    def after_commit(self, before: LedgerRow | None, after: LedgerRow, rows: Sequence[OutboxRow]) -> None:
        """The ledger's hook: step 3."""
        self.committed(rows)

    def after_failure(self, after: LedgerRow, rows: Sequence[OutboxRow], *, may_have_committed: bool) -> None:
        """The ledger's hook: a write that surely did not commit releases its intent; one that may have
        committed keeps it for the sweep."""
        self._ledger.settle(rows, keep=may_have_committed)

    async def intend(self, message_id: str, rows: Sequence[OutboxRow] = (), *, keep: bool = False) -> None:
        """Step 1: the intent, written before the transition (once per message and minute in this
        process: a message's changes in one minute share it). With `keep`, it stays for the sweep."""
        now = self._now()
        key = (message_id, now.replace(second=0, microsecond=0) + REPUBLISH_AFTER * 2)
        self._ledger.open(key, rows, keep=keep)
        try:
            while not self._ledger.written(key):
                if (retiring := self._ledger.retiring(key)) is not None:
                    await retiring  # its delete must land before the new write, or it would undo it
                    continue
                await self._intents.add(message_id, DueKind.FEED, key[1], holder=self._holder)
                self._ledger.mark_written(key)
        except BaseException:
            self._ledger.settle(rows, keep=False)  # no ledger write follows: nothing to publish under it
            raise

    def committed(self, rows: Sequence[OutboxRow]) -> None:
        """Step 3: hand the committed events to the background publisher."""
        if not rows:
            return
        self._pending.extend(rows)
        if len(self._pending) >= PUBLISH_BATCH:
            self._full.set()
        self._start_flusher()

    async def published(self) -> None:
        """Wait for what was handed over to be published (or to fail, and stay for the sweep)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def drain(self) -> None:
        """Wait for what was handed over to be published, then retire every intent left with nothing
        to publish (tests, and a clean shutdown)."""
        await self.published()
        await self._retire(every_minute=True)

    async def close(self) -> None:
        """Publish what is pending (what fails stays for the sweep), then close the publisher."""
        await self.drain()
        if self._retirer is not None:
            self._retirer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retirer
        await self._publisher.close()

    # -- publishing -------------------------------------------------------------------------------

    def _start_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            # Detached from the log context of the message that happened to start it: it publishes for all.
            self._flusher = asyncio.get_running_loop().create_task(self._flush(), context=detached_context())

    async def _flush(self) -> None:
        while self._pending:
            await self._linger()
            batch, self._pending = self._pending[:PUBLISH_BATCH], self._pending[PUBLISH_BATCH:]
            published = await self._publish(batch)
            self._ledger.settle(batch, keep=not published)
        if self._now().replace(second=0, microsecond=0) != self._retired_minute:
            await self._retire(every_minute=False)
        self._retire_later()

    async def _linger(self) -> None:
        """Wait until a batch is full, or the linger is over."""
        self._full.clear()
        if len(self._pending) < PUBLISH_BATCH:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), PUBLISH_LINGER_S)

    def _retire_later(self) -> None:
        """After the minute ends, retire what this minute left (else a quiet process would leave its
        last intents for the sweep)."""
        if self._ledger and (self._retirer is None or self._retirer.done()):
            delay = 61 - self._now().second
            self._retirer = asyncio.get_running_loop().create_task(
                self._retire_after(delay), context=detached_context()
            )

    async def _retire_after(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        await self._retire(every_minute=False)

    async def _publish(self, rows: Sequence[OutboxRow]) -> bool:
        try:
            await self._publisher.publish([row.event_json for row in rows])
        except ContactMessagesError as exc:
            # The intents stay; the sweep republishes the rows. The send or event that made them is done.
            emit_warning(log, "feed.publish_failed", "status feed publish failed", reason=str(exc)[:200])
            count(log, "feed_publish_failed", len(rows))
            with contextlib.suppress(ContactMessagesError):
                await self._health.upsert(FeedHealthRow(iso(self._now()), str(exc)[:1000]).to_entity())
            return False
        count(log, "feed_published", len(rows))
        return True

    async def _retire(self, *, every_minute: bool) -> None:
        """Step 4: delete this process's intents with nothing left to publish, in batches: those whose
        minute is over (no later write of this process can use them), or all of them at a drain."""
        minute = self._now().replace(second=0, microsecond=0)
        self._retired_minute = minute
        keys = self._ledger.retirable(minute, every_minute=every_minute)
        if not keys:
            return
        done = self._ledger.begin_retiring(keys)
        try:
            with contextlib.suppress(ContactMessagesError):  # they stay for the sweep, which finds nothing new
                await self._intents.remove_keys([self._intent_row_key(key) for key in keys])
        finally:
            self._ledger.end_retiring(keys, done)

    def _intent_row_key(self, key: IntentKey) -> str:
        message_id, bucket = key
        return DueRow.new(self._intents.partition, message_id, DueKind.FEED.value, iso(bucket), self._holder).row_key

    # -- the sweep (reconcile timer) ----------------------------------------------------------------

    async def sweep(self, now: datetime, limit: int) -> int:
        """Step 5: republish what is in the partitions whose intents are due; returns how many."""
        gate = asyncio.Semaphore(SWEEP_CONCURRENCY)

        async def one(message_id: str) -> int:
            async with gate:
                return await self._republish(message_id)

        intents = await self._intents.due(now, limit)
        message_ids = sorted({entry.message_id for entry in intents})
        results = await asyncio.gather(*(one(message_id) for message_id in message_ids))
        await self._intents.remove_all(intents)
        return sum(results)

    async def _republish(self, message_id: str) -> int:
        rows = await self._history(message_id)
        if rows and not await self._publish(rows):
            await self.intend(message_id, keep=True)  # try again at the next sweep
            return 0
        return len(rows)

    async def _history(self, message_id: str) -> list[OutboxRow]:
        """The message's events: its ledger row's columns, then any rows past them."""
        stored = await self._messages.get(message_id, ledger_row_key(message_id))
        if stored is None:
            return []
        return await self._history_of(stored.entity)

    async def _history_of(self, ledger_entity: Mapping[str, Any]) -> list[OutboxRow]:
        row = LedgerRow.from_entity(ledger_entity)
        events = row.feed_events
        rows = [OutboxRow(row.message_id, sequence, text) for sequence, text in events.items()]
        if len(rows) < row.feed_sequence:  # some are rows of their own (see FEED_COLUMNS)
            query = self._messages.query(OUTBOX_ROWS_FILTER, {"pk": row.message_id})
            rows += [OutboxRow.from_entity(entity) async for entity in query]
        return sorted(rows, key=lambda r: r.sequence)

    # -- operations -------------------------------------------------------------------------------

    async def status(self) -> FeedStatus:
        """What `contactmsg feed status` shows: the sweep's backlog and the last publish failure."""
        intents = await self._intents.due(datetime.max.replace(tzinfo=UTC), limit=100_000)
        stored = await self._health.get(*FeedHealthRow.keys())
        last_error = FeedHealthRow.from_entity(stored.entity) if stored is not None else None
        return FeedStatus(len(intents), intents[0].due_at if intents else None, last_error)

    async def replay(self, since: datetime) -> int:
        """Republish every change at or after `since`, from the messages' feed history (same ids and
        content: subscribers dedupe what they have). Scans the ledger: an operator's command, not a path."""
        query = self._messages.query(changed_since_filter(), {"since": iso(since)})
        ledger_entities = [entity async for entity in query]
        replayed = 0
        for entity in ledger_entities:
            rows = [r for r in await self._history_of(entity) if _event_time(r) >= since]
            for start in range(0, len(rows), PUBLISH_BATCH):
                batch = rows[start : start + PUBLISH_BATCH]
                await self._publisher.publish([row.event_json for row in batch])
                replayed += len(batch)
        return replayed

    def _event_json(self, row: LedgerRow, status: Status, previous: Status | None, sequence: int) -> str:
        at = row.times.get(status) or row.updated_at
        change = StatusChange(
            message_id=row.message_id,
            sequence=sequence,
            status=status,
            previous_status=previous,
            channel=row.channel,
            recipient_masked=row.recipient_masked or "***",
            changed_at=parse_iso(at) if at else self._now(),
            reason=row.reason if status == row.status else None,
            correlation_id=row.correlation_id,
            metadata=_metadata(row.metadata),
            segments=row.segments,
            cost_estimate=row.cost_estimate,
        )
        return json.dumps(cloud_event(change, self._source))


def _event_time(row: OutboxRow) -> datetime:
    return parse_iso(str(json.loads(row.event_json)["time"]))


def _metadata(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    with contextlib.suppress(ValueError):
        loaded = json.loads(text)
        if isinstance(loaded, dict):
            return loaded
    return {}


class _IntentLedger:
    """This process's feed intents: how many events under each are yet to settle (published, or left
    to the sweep), which are written, which must stay for the sweep, and which are being deleted."""

    def __init__(self) -> None:
        self._open: dict[IntentKey, int] = {}
        self._intent_of: dict[tuple[str, int], IntentKey] = {}  # (message id, sequence) -> its intent
        self._written: set[IntentKey] = set()
        self._kept: set[IntentKey] = set()
        self._retiring: dict[IntentKey, asyncio.Future[None]] = {}

    def open(self, key: IntentKey, rows: Sequence[OutboxRow], *, keep: bool) -> None:
        self._open[key] = self._open.get(key, 0) + len(rows)
        for row in rows:
            self._intent_of[(row.message_id, row.sequence)] = key
        if keep:
            self._kept.add(key)

    def written(self, key: IntentKey) -> bool:
        return key in self._written

    def mark_written(self, key: IntentKey) -> None:
        self._written.add(key)

    def retiring(self, key: IntentKey) -> asyncio.Future[None] | None:
        return self._retiring.get(key)

    def settle(self, rows: Sequence[OutboxRow], *, keep: bool) -> None:
        """These events need nothing more from this process; with `keep`, their intent stays for the sweep."""
        for row in rows:
            key = self._intent_of.pop((row.message_id, row.sequence), None)
            if key is None:  # republished by the sweep, or settled already
                continue
            self._open[key] -= 1
            if keep:
                self._kept.add(key)

    def retirable(self, minute: datetime, *, every_minute: bool) -> list[IntentKey]:
        """Intents with nothing left to settle, of minutes before `minute` (or of every minute); kept
        intents of past minutes are forgotten (the sweep owns them)."""
        ready: list[IntentKey] = []
        for key, left in list(self._open.items()):
            past = key[1] - REPUBLISH_AFTER * 2 < minute
            if left or key in self._retiring or not (past or every_minute):
                continue
            if key in self._kept:
                if past:
                    self._forget(key)
            elif key in self._written:
                ready.append(key)
            else:
                self._forget(key)  # its write failed: there is no intent to delete
        return ready

    def begin_retiring(self, keys: Sequence[IntentKey]) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for key in keys:
            self._written.discard(key)  # a new write under it waits for the delete, then writes it again
            self._retiring[key] = done
        return done

    def end_retiring(self, keys: Sequence[IntentKey], done: asyncio.Future[None]) -> None:
        for key in keys:
            del self._retiring[key]
            if not self._open.get(key) and key not in self._written:
                self._forget(key)
        done.set_result(None)

    def __bool__(self) -> bool:
        return bool(self._open)

    def _forget(self, key: IntentKey) -> None:
        self._open.pop(key, None)
        self._written.discard(key)
        self._kept.discard(key)
