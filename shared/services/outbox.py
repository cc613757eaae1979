"""The status feed's outbox: every ledger transition published, nothing lost, nothing early (issue 17).

How a transition reaches the topic:
1. Before the ledger write, an intent (a due entry in the `feed` partition, one per message per
   minute, written in group commits) says "this message may have unpublished changes".
2. The ledger write and the change's event (an outbox row in the message's partition, `feed|<seq>`)
   commit in one entity-group transaction: the event exists exactly when the transition does. The
   sequence number lives on the ledger row, so the etag that guards the write also orders the changes.
3. After the commit the event is handed to the publisher, which sends batches in the background and
   marks what was published (the rows stay as the message's feed history, for `replay`, until
   retention deletes the partition). A publish failure never fails or retries a send or an event record.
4. The reconcile timer's sweep reads intents older than a minute (never the messages table as a
   whole), republishes what is still in those partitions, and drops the intents.
A crash anywhere leaves an intent (step 1 came first) and the outbox row (step 2), so step 4 finds it.
Subscribers dedupe by the event id (message id + sequence), which a republished change keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shared.adapters.tables import Op, TableStore
from shared.cache import Lru
from shared.clock import Clock, iso, parse_iso
from shared.errors import ContactMessagesError
from shared.feed import DEFAULT_SOURCE, StatusChange, cloud_event
from shared.models import Channel, Status
from shared.observability import count, detached_context, emit_warning
from shared.schema import OUTBOX_ROWS_FILTER, FeedHealthRow, LedgerRow, OutboxRow, changed_since_filter, keys_of
from shared.services.due import DueIndex, DueKind

log = logging.getLogger(__name__)

FEED_PARTITION = "feed"
CHANNELS = frozenset(c.value for c in Channel)
# An outbox row older than this is assumed orphaned (its process died before publishing it).
REPUBLISH_AFTER = timedelta(minutes=1)
PUBLISH_BATCH = 100
SWEEP_CONCURRENCY = 16


class Publisher(Protocol):
    async def publish(self, events: Sequence[Mapping[str, Any]]) -> None: ...

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
        self._pending: list[OutboxRow] = []
        self._intended: Lru[tuple[str, datetime], bool] = Lru(20_000)
        self._flusher: asyncio.Task[None] | None = None

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
        return replace(after, feed_sequence=sequence), rows

    async def before_write(self, before: LedgerRow | None, after: LedgerRow, rows: Sequence[OutboxRow]) -> None:
        """The ledger's hook (`shared.ledger.TransitionHook`): step 1 for a write that has events."""
        if rows:
            await self.intend(after.message_id)

    def after_commit(self, before: LedgerRow | None, after: LedgerRow, rows: Sequence[OutboxRow]) -> None:
        """The ledger's hook: step 3."""
        self.committed(rows)

    async def intend(self, message_id: str) -> None:
        """Step 1: the intent, written before the transition (idempotent within its minute: a message's
        changes in one minute share it, and this process writes it once)."""
        now = self._now()
        bucket = now.replace(second=0, microsecond=0) + REPUBLISH_AFTER * 2
        key = (message_id, bucket)
        if self._intended.get(key):
            return
        await self._intents.add(message_id, DueKind.FEED, bucket)
        self._intended.put(key, True)

    def committed(self, rows: Sequence[OutboxRow]) -> None:
        """Step 3: hand the committed events to the background publisher."""
        if not rows:
            return
        self._pending.extend(rows)
        if self._flusher is None or self._flusher.done():
            # Detached from the log context of the message that happened to start it: it publishes for all.
            self._flusher = asyncio.get_running_loop().create_task(self._flush(), context=detached_context())

    async def drain(self) -> None:
        """Wait for what was handed over to be published (tests, and a clean shutdown)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def close(self) -> None:
        """Publish what is pending (what fails stays for the sweep), then close the publisher."""
        await self.drain()
        await self._publisher.close()

    # -- publishing -------------------------------------------------------------------------------

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:PUBLISH_BATCH], self._pending[PUBLISH_BATCH:]
            await self._publish(batch)

    async def _publish(self, rows: Sequence[OutboxRow]) -> bool:
        try:
            await self._publisher.publish([json.loads(row.event_json) for row in rows])
        except ContactMessagesError as exc:
            # The rows stay unpublished; the sweep republishes them. The send or event that made them is done.
            emit_warning(log, "feed.publish_failed", "status feed publish failed", reason=str(exc)[:200])
            count(log, "feed_publish_failed", len(rows))
            with contextlib.suppress(ContactMessagesError):
                await self._health.upsert(FeedHealthRow(iso(self._now()), str(exc)[:1000]).to_entity())
            return False
        await self._mark_published(rows)
        count(log, "feed_published", len(rows))
        return True

    # -- the sweep (reconcile timer) ----------------------------------------------------------------

    async def sweep(self, now: datetime, limit: int) -> int:
        """Step 4: republish what is left in the partitions whose intents are due; returns how many."""
        gate = asyncio.Semaphore(SWEEP_CONCURRENCY)

        async def one(message_id: str) -> int:
            async with gate:
                return await self._republish(message_id, now)

        intents = await self._intents.due(now, limit)
        results = await asyncio.gather(*(one(entry.message_id) for entry in intents))
        for entry in intents:
            await self._intents.remove(entry)
        return sum(results)

    async def _mark_published(self, rows: Sequence[OutboxRow]) -> None:
        """One write per message: a message's rows published together are marked in one transaction."""
        at = iso(self._now())
        by_message: dict[str, list[OutboxRow]] = {}
        for row in rows:
            if row.published_at is None:
                by_message.setdefault(row.message_id, []).append(row)
        for group in by_message.values():
            marks = [Op("merge", row.published(at), etag="*") for row in group]
            with contextlib.suppress(ContactMessagesError):  # retention deleted them meanwhile: nothing to mark
                if len(marks) == 1:
                    await self._messages.update(marks[0].entity, "*")
                else:
                    await self._messages.transact(marks)

    async def _republish(self, message_id: str, now: datetime) -> int:
        rows = [row for row in await self._history(message_id) if row.published_at is None]
        if rows and not await self._publish(rows):
            await self.intend(message_id)  # try again at the next sweep
            return 0
        return len(rows)

    async def _history(self, message_id: str) -> list[OutboxRow]:
        query = self._messages.query(OUTBOX_ROWS_FILTER, {"pk": message_id})
        return [OutboxRow.from_entity(entity) async for entity in query]

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
        message_ids = [keys_of(entity)[0] async for entity in query]
        replayed = 0
        for message_id in message_ids:
            rows = [r for r in await self._history(message_id) if _event_time(r) >= since]
            for start in range(0, len(rows), PUBLISH_BATCH):
                batch = rows[start : start + PUBLISH_BATCH]
                await self._publisher.publish([json.loads(row.event_json) for row in batch])
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
