"""Event Grid imitation: push events to the configured webhook, retrying the way Event Grid does.

Why: the app's `record_event` function must cope with what Event Grid really does: at-least-once
delivery, retries after failures, no retry after 400/401/403/413, duplicates, reordering and, when
the subscription turns it on, several events per request. Every planned sequence runs as its own
task (so the send endpoints never wait for it) and hands over one event at a time, the next only
once the previous one's delivery has ended (so the planned order is the arrival order). A semaphore
bounds how many POSTs are in flight at once. Each event's end is written to the events log.

With `max_events_per_batch` at 1 (Event Grid's default) the sequence's task POSTs each event
itself. Above 1 the event goes into the outbox and the task waits on a future; pump tasks (as many
as POSTs may be in flight) each take what is queued at that moment, never waiting for more, up to
the count and KB limits, and POST it as one array. Since a pump takes its next batch only once its
last one has ended, events pile up while the webhook is busy, which is when batches grow, as they
do in Event Grid. A batch is all-or-none: it is retried, dead-lettered or delivered as a whole, and
then every event in it gets its own record and its waiting task is released. A batch waiting for
its retry keeps its pump; the other pumps carry on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp

from devstack.acs import events
from devstack.acs.builders import Target
from devstack.acs.config import Settings
from devstack.acs.events import EventSpec
from devstack.acs.models import DeliveryOutcome, DeliveryRecord
from devstack.acs.outcomes import Plan

logger = logging.getLogger(__name__)

SUCCESS = frozenset({200, 201, 202, 203, 204})
NOT_RETRIED = frozenset({400, 401, 403, 413})
EVENTS_LOG_LIMIT = 50_000
T = TypeVar("T")


@dataclass(frozen=True)
class Queued:
    """An event in the outbox, and the future its sequence's task waits on until its batch has ended."""

    spec: EventSpec
    done: asyncio.Future[None]


@dataclass(frozen=True)
class BatchLimits:
    """A subscription's batching policy: at most `max_events` events in `max_bytes` of request body."""

    max_events: int
    max_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> BatchLimits:
        return cls(settings.max_events_per_batch, settings.preferred_batch_kb * 1024)


def cut(queue: deque[Queued], limits: BatchLimits, rendering: events.Rendering) -> list[Queued]:
    """Take the next batch off the front of a non-empty queue.

    Sizes are those of the body `events.request_body` builds with this rendering.
    """
    return cut_sized(queue, limits, lambda item: len(events.encoded(item.spec, rendering)))


def cut_sized(queue: deque[T], limits: BatchLimits, size_of: Callable[[T], int]) -> list[T]:
    """Take the next batch off the front of a non-empty queue of anything `size_of` can measure (the
    JSON bytes it takes up in the delivered array; the local Event Grid topic batches raw events).

    The first event always goes, even when it alone is over the size (Event Grid still delivers it);
    the batch then grows until the next event would break the count or the size limit.
    """
    batch = [queue.popleft()]
    body = len(b"[]") + size_of(batch[0])
    while queue and len(batch) < limits.max_events:
        grown = body + len(events.ARRAY_SEPARATOR) + size_of(queue[0])
        if grown > limits.max_bytes:
            break
        batch.append(queue.popleft())
        body = grown
    return batch


class Outbox:
    """Events ready for batched delivery, oldest first, with a signal that wakes idle pumps."""

    def __init__(self) -> None:
        self._queue: deque[Queued] = deque()
        self._ready = asyncio.Event()

    def put(self, item: Queued) -> None:
        self._queue.append(item)
        self._ready.set()

    async def wait(self) -> None:
        """Return once something is queued (at once if something already is)."""
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()

    def take(self, limits: BatchLimits, rendering: events.Rendering) -> list[Queued]:
        """The next batch; call right after `wait`, with no await in between."""
        return cut(self._queue, limits, rendering)

    def abandon(self) -> None:
        """Drop every queued event, cancelling the futures their tasks wait on, so none waits forever."""
        while self._queue:
            self._queue.popleft().done.cancel()


class Dispatcher:
    """Schedules planned event sequences and delivers them to the current webhook."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self._tasks: set[asyncio.Task[None]] = set()
        self._pumps: set[asyncio.Task[None]] = set()
        self._log: deque[DeliveryRecord] = deque(maxlen=EVENTS_LOG_LIMIT)
        self._session: aiohttp.ClientSession | None = None
        self._gate = asyncio.Semaphore(settings().delivery.concurrency)
        self._outbox = Outbox()

    @property
    def pending(self) -> int:
        """Sequences and inbound events not yet fully delivered (pumps are not counted: they idle)."""
        return len(self._tasks)

    def log(self) -> list[DeliveryRecord]:
        return list(self._log)

    def clear(self) -> None:
        """Forget the events log and abandon every delivery still planned (used by reset)."""
        for task in [*self._tasks, *self._pumps]:
            task.cancel()
        # the cancelled pumps end at the loop's next turn; new ones start with the next queued event
        self._pumps = set()
        self._outbox.abandon()
        self._log.clear()

    async def close(self) -> None:
        tasks = [*self._tasks, *self._pumps]
        for task in tasks:
            task.cancel()
        self._outbox.abandon()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pumps = set()
        if self._session is not None:
            await self._session.close()
            self._session = None
        # a semaphore (and the outbox's event) belongs to the loop it first waited on; a restarted
        # emulator runs a new loop
        self._gate = asyncio.Semaphore(self._settings().delivery.concurrency)
        self._outbox = Outbox()

    def schedule(self, target: Target, plan: Plan, sent_at: datetime) -> None:
        """Deliver the plan's steps after the report delay (or the late delay), in the planned order."""
        if plan.steps:
            self._spawn(self._run_plan(target, plan, sent_at))

    def emit(self, spec: EventSpec) -> None:
        """Deliver one event now (inbound messages)."""
        self._spawn(self._deliver(spec))

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_plan(self, target: Target, plan: Plan, sent_at: datetime) -> None:
        settings = self._settings()
        delay = settings.effective_late_delay if plan.late else settings.report_delay
        await asyncio.sleep(delay)
        reported_at = sent_at + timedelta(seconds=delay)
        for step in plan.steps:
            spec = target.event(step, reported_at + timedelta(seconds=step.time_offset), target.event_id(step))
            if step.envelope_offset:
                spec = replace(spec, event_time=spec.event_time + timedelta(seconds=step.envelope_offset))
            for _ in range(step.copies):
                await self._deliver(spec)

    async def _deliver(self, spec: EventSpec) -> None:
        """Deliver one event; return once its delivery has ended (delivered, dead-lettered or dropped)."""
        if self._settings().max_events_per_batch == 1:
            await self._send((spec,), batched=False)
        else:
            await self._through_outbox(spec)

    # batching ----------------------------------------------------------------------------------

    async def _through_outbox(self, spec: EventSpec) -> None:
        """Queue the event and wait until the batch it leaves in has ended."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox.put(Queued(spec, done))
        self._start_pumps()
        await done

    def _start_pumps(self) -> None:
        """Keep one pump per allowed POST: started lazily on the running loop, replaced if one died."""
        loop = asyncio.get_running_loop()
        while len(self._pumps) < self._settings().delivery.concurrency:
            pump = loop.create_task(self._pump())
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    async def _pump(self) -> None:
        """Deliver batches one after another; the limits are read per batch, so admin changes apply."""
        while True:
            await self._outbox.wait()
            settings = self._settings()
            batch = self._outbox.take(BatchLimits.of(settings), _rendering(settings, batched=True))
            await self._deliver_batch(batch)

    async def _deliver_batch(self, batch: list[Queued]) -> None:
        """Deliver the batch as one request, then release the tasks waiting on its events."""
        try:
            await self._send(tuple(item.spec for item in batch), batched=True)
        except BaseException:
            # abandoned (reset, stop) or broken: the waiting tasks must not wait forever
            for item in batch:
                item.done.cancel()
            raise
        for item in batch:
            if not item.done.done():  # its task may have been cancelled meanwhile
                item.done.set_result(None)

    # the request, its retries and its record -----------------------------------------------------

    async def _send(self, specs: Sequence[EventSpec], *, batched: bool) -> None:
        """POST the events as one request, retrying until it succeeds or the policy gives up; every
        event shares the request's fate (Event Grid's batches are all-or-none)."""
        statuses: list[int | None] = []
        policy = self._settings().delivery
        for attempt in range(policy.max_attempts):
            settings = self._settings()
            if settings.webhook_url is None:
                self._finish(specs, DeliveryOutcome.NO_WEBHOOK, statuses, "no webhook configured")
                return
            status = await self._post(settings, specs, attempt, batched=batched)
            statuses.append(status)
            if status in SUCCESS:
                self._finish(specs, DeliveryOutcome.DELIVERED, statuses, None)
                return
            if status in NOT_RETRIED:
                self._finish(specs, DeliveryOutcome.DEAD_LETTERED, statuses, f"UndeliverableDueToHttp{status}")
                return
            if attempt + 1 < policy.max_attempts:
                await asyncio.sleep(policy.backoff * 2**attempt)
        self._finish(specs, DeliveryOutcome.DEAD_LETTERED, statuses, "MaxDeliveryAttemptsExceeded")

    async def _post(self, settings: Settings, specs: Sequence[EventSpec], attempt: int, *, batched: bool) -> int | None:
        """POST the events as one array; the HTTP status, or None when the connection failed or timed out."""
        rendering = _rendering(settings, batched=batched)
        url = settings.webhook_url or ""
        async with self._gate:
            try:
                session = self._client(settings)
                async with session.post(
                    url,
                    data=events.request_body(specs, rendering),
                    headers=events.request_headers(specs, rendering, attempt),
                ) as response:
                    await response.read()
                    return response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                logger.info(
                    "event delivery attempt failed event_id=%s events=%d error=%s",
                    specs[0].event_id,
                    len(specs),
                    type(exc).__name__,
                )
                return None

    def _client(self, settings: Settings) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=settings.delivery.timeout)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    def _finish(
        self, specs: Sequence[EventSpec], outcome: DeliveryOutcome, statuses: list[int | None], reason: str | None
    ) -> None:
        at = datetime.now(UTC)
        for spec in specs:
            record = DeliveryRecord(
                event_id=spec.event_id,
                event_type=spec.event_type,
                subject=spec.subject,
                message_id=spec.message_id,
                status=spec.status,
                outcome=outcome,
                attempts=len(statuses),
                http_statuses=tuple(statuses),
                reason=reason,
                at=at,
            )
            self._log.append(record)
            logger.info(
                "event delivery finished event_type=%s event_id=%s outcome=%s attempts=%d batch=%d",
                spec.event_type,
                spec.event_id,
                outcome,
                len(statuses),
                len(specs),
            )


def _rendering(settings: Settings, *, batched: bool) -> events.Rendering:
    return events.Rendering(settings.schema, settings.casing, settings.topic, settings.subscription_name, batched)
