"""Push delivery to one webhook subscription, with Event Grid's retries, batching and dead-lettering.

Why: subscribers of the status feed must be written against what Event Grid really does
(https://learn.microsoft.com/azure/event-grid/delivery-and-retry): at-least-once, unordered, batches
of up to `maxEventsPerBatch` events and about `preferredBatchSizeInKilobytes` (never waiting to fill
one), only 200-204 count as delivered, 400/401/403/413 are never retried, every other failure is
retried on the exponential schedule of `RetryPolicy` until `maxDeliveryAttempts` or the event's time
to live runs out (checked at the next scheduled attempt), and then the event is dead-lettered with
`deadLetterReason`, `deliveryAttempts`, `lastDeliveryOutcome` and `publishTime`.

Events wait in a due-time heap. Each pump takes the events that are due, cuts a batch with the ACS
emulator's `cut_sized` (the same count and size rule), POSTs it and either forgets the events or
puts them back with their next due time, so retried events may travel in other batches, as in Event
Grid. Dead-lettered events are kept in memory (the admin API shows them) and, when a folder is given,
written as Event Grid writes blobs: `<folder>/<SUBSCRIPTION>/<y>/<m>/<d>/<h>/<uuid>.json`. Event Grid
waits about five minutes before it writes a dead letter; the local topic writes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from devstack.acs.delivery import NOT_RETRIED, SUCCESS, BatchLimits, cut_sized
from devstack.acs.events import ARRAY_SEPARATOR, CLOUDEVENTS_BATCH_CONTENT_TYPE, CONTENT_TYPES, DATA_VERSION
from devstack.acs.events import METADATA_VERSION as EG_METADATA_VERSION
from devstack.acs.models import DeliveryOutcome, DeliveryRecord, EventSchema, iso
from devstack.eventgrid.config import Subscription

logger = logging.getLogger(__name__)

LOG_LIMIT = 50_000
# requests in flight per subscription (one per pump); Event Grid itself delivers concurrently
CONCURRENCY = 4
# lastDeliveryOutcome names Event Grid uses for the answers it got (413 is named after its status here);
# the docs name no others, so any other answer is "GenericError" and a failed connection "SocketError"
OUTCOMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    408: "TimedOut",
    413: "RequestEntityTooLarge",
    503: "Busy",
}


@dataclass(frozen=True)
class Pending:
    """One event on its way to the subscriber: its JSON, when it was published and how its tries went."""

    event: dict[str, Any]
    encoded: bytes
    published_at: datetime
    published_clock: float
    statuses: tuple[int | None, ...] = ()
    last_attempt_at: datetime | None = None


class Deliverer:
    """Delivers one subscription's events; `offer` never waits, `close` abandons what is left."""

    def __init__(self, subscription: Subscription, schema: EventSchema, dead_letter_dir: Path | None) -> None:
        self.subscription = subscription
        self._schema = schema
        self._folder = dead_letter_dir
        self._heap: list[tuple[float, int, Pending]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._pumps: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._in_flight = 0
        self.log: deque[DeliveryRecord] = deque(maxlen=LOG_LIMIT)
        self.dead_letters: list[dict[str, Any]] = []

    @property
    def pending(self) -> int:
        """Events not yet delivered or dead-lettered (waiting, or in a request now)."""
        return len(self._heap) + self._in_flight

    def offer(self, events: Sequence[dict[str, Any]]) -> None:
        now, clock = datetime.now(UTC), time.monotonic()
        for event in events:
            self._push(clock, Pending(event, json.dumps(event).encode("utf-8"), now, clock))
        self._start_pumps()

    async def close(self) -> None:
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        self._pumps.clear()
        if self._session is not None:
            await self._session.close()

    # the pumps ------------------------------------------------------------------------------------

    def _push(self, due: float, item: Pending) -> None:
        heapq.heappush(self._heap, (due, next(self._order), item))
        self._wake.set()

    def _start_pumps(self) -> None:
        while len(self._pumps) < CONCURRENCY:
            pump = asyncio.get_running_loop().create_task(self._pump())
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    async def _pump(self) -> None:
        while True:
            await self._until_due()
            batch = self._take_batch()
            self._in_flight += len(batch)
            try:
                await self._attempt(batch)
            finally:
                self._in_flight -= len(batch)

    async def _until_due(self) -> None:
        while not self._heap or self._heap[0][0] > time.monotonic():
            self._wake.clear()
            wait = None if not self._heap else self._heap[0][0] - time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _take_batch(self) -> list[Pending]:
        now = time.monotonic()
        due: deque[Pending] = deque()
        while self._heap and self._heap[0][0] <= now:
            due.append(heapq.heappop(self._heap)[2])
        limits = BatchLimits(self.subscription.max_events_per_batch, self.subscription.preferred_batch_kb * 1024)
        batch = cut_sized(due, limits, lambda item: len(item.encoded))
        for item in due:  # not in this batch: due still, for the next pump
            self._push(now, item)
        return batch

    # one attempt and its consequences ---------------------------------------------------------

    async def _attempt(self, batch: list[Pending]) -> None:
        live = []
        for item in batch:
            if self._expired(item):
                self._dead_letter(item, "TimeToLiveExceeded")
            else:
                live.append(item)
        if not live:
            return
        status = await self._post(live)
        at = datetime.now(UTC)
        for item in live:
            self._after(replace(item, statuses=(*item.statuses, status), last_attempt_at=at), status)

    def _expired(self, item: Pending) -> bool:
        return bool(item.statuses) and time.monotonic() - item.published_clock > self.subscription.retry.ttl_seconds

    def _after(self, item: Pending, status: int | None) -> None:
        policy = self.subscription.retry
        if status in SUCCESS:
            self._record(item, DeliveryOutcome.DELIVERED, None)
        elif status in NOT_RETRIED:
            self._dead_letter(item, f"UndeliverableDueToHttp{OUTCOMES.get(status or 0, 'GenericError')}")
        elif len(item.statuses) >= policy.max_delivery_attempts:
            self._dead_letter(item, "MaxDeliveryAttemptsExceeded")
        else:
            delay = policy.delay_after(len(item.statuses), status)
            self._push(time.monotonic() + delay * (1 + random.uniform(0, policy.jitter)), item)

    async def _post(self, batch: list[Pending]) -> int | None:
        """POST the batch; the HTTP status, or None when the connection failed or timed out."""
        try:
            async with self._client().post(
                self.subscription.endpoint, data=self._body(batch), headers=self._headers(batch)
            ) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            event_id = batch[0].event.get("id")
            logger.info("feed delivery attempt failed event_id=%s error=%s", event_id, type(exc).__name__)
            return None

    def _body(self, batch: list[Pending]) -> bytes:
        if self._schema is EventSchema.CLOUDEVENTS and self.subscription.max_events_per_batch == 1:
            return batch[0].encoded  # one CloudEvent in structured mode, as the CloudEvents HTTP binding has it
        return b"[" + ARRAY_SEPARATOR.join(item.encoded for item in batch) + b"]"

    def _headers(self, batch: list[Pending]) -> dict[str, str]:
        """The `aeg-*` headers of a delivery; the delivery count is the attempts made before this one."""
        if self._schema is EventSchema.CLOUDEVENTS and self.subscription.max_events_per_batch > 1:
            content_type = CLOUDEVENTS_BATCH_CONTENT_TYPE
        else:
            content_type = CONTENT_TYPES[self._schema]
        return {
            "Content-Type": content_type,
            "aeg-event-type": "Notification",
            "aeg-subscription-name": self.subscription.name.upper(),
            "aeg-delivery-count": str(len(batch[0].statuses)),
            "aeg-data-version": str(batch[0].event.get("dataVersion", DATA_VERSION)),
            "aeg-metadata-version": EG_METADATA_VERSION,
            "aeg-output-event-id": str(batch[0].event.get("id", "")),
        }

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.subscription.retry.response_timeout)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    # outcomes ---------------------------------------------------------------------------------

    def _dead_letter(self, item: Pending, reason: str) -> None:
        letter = {**item.event, **self._dead_letter_fields(item, reason)}
        self.dead_letters.append(letter)
        if self._folder is not None:
            self._write(letter)
        self._record(item, DeliveryOutcome.DEAD_LETTERED, reason)

    def _dead_letter_fields(self, item: Pending, reason: str) -> dict[str, Any]:
        last = item.statuses[-1] if item.statuses else None
        outcome = "SocketError" if last is None else OUTCOMES.get(last, "GenericError")
        if self._schema is EventSchema.CLOUDEVENTS:
            return {
                "deadletterreason": reason,
                "deliveryattempts": len(item.statuses),
                "lastdeliveryoutcome": outcome,
                "publishtime": iso(item.published_at),
            }
        return {
            "deadLetterReason": reason,
            "deliveryAttempts": len(item.statuses),
            "lastDeliveryOutcome": outcome,
            "lastHttpStatusCode": last or 0,
            "publishTime": iso(item.published_at),
            "lastDeliveryAttemptTime": iso(item.last_attempt_at or item.published_at),
        }

    def _write(self, letter: dict[str, Any]) -> None:
        assert self._folder is not None
        now = datetime.now(UTC)
        folder = self._folder / self.subscription.name.upper() / f"{now.year}/{now.month}/{now.day}/{now.hour}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{uuid.uuid4()}.json").write_text(json.dumps([letter]))

    def _record(self, item: Pending, outcome: DeliveryOutcome, reason: str | None) -> None:
        event = item.event
        data: dict[str, Any] = event["data"] if isinstance(event.get("data"), dict) else {}
        record = DeliveryRecord(
            event_id=str(event.get("id")),
            event_type=str(event.get("type") or event.get("eventType")),
            subject=str(event.get("subject", "")),
            message_id=data.get("messageId"),
            status=data.get("status"),
            outcome=outcome,
            attempts=len(item.statuses),
            http_statuses=item.statuses,
            reason=reason,
            at=datetime.now(UTC),
        )
        self.log.append(record)
        logger.info(
            "feed delivery finished subscription=%s event_id=%s outcome=%s attempts=%d",
            self.subscription.name,
            record.event_id,
            outcome,
            record.attempts,
        )
