"""Event Grid imitation: push events to the configured webhook, retrying the way Event Grid does.

Why: the app's `record_event` function must cope with what Event Grid really does: at-least-once
delivery, retries after failures, no retry after 400/401/403/413, duplicates and reordering. Every
planned sequence runs as its own task (so the send endpoints never wait for it), its events are
delivered one after another (so the planned order is the arrival order), and a semaphore bounds how
many POSTs are in flight at once. Each delivery's end is written to the events log.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

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


class Dispatcher:
    """Schedules planned event sequences and delivers them to the current webhook."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self._tasks: set[asyncio.Task[None]] = set()
        self._log: deque[DeliveryRecord] = deque(maxlen=EVENTS_LOG_LIMIT)
        self._session: aiohttp.ClientSession | None = None
        self._gate = asyncio.Semaphore(settings().delivery.concurrency)

    @property
    def pending(self) -> int:
        """Sequences and inbound events not yet fully delivered."""
        return len(self._tasks)

    def log(self) -> list[DeliveryRecord]:
        return list(self._log)

    def clear(self) -> None:
        """Forget the events log and abandon every delivery still planned (used by reset)."""
        for task in list(self._tasks):
            task.cancel()
        self._log.clear()

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        # a semaphore belongs to the loop it first waited on; a restarted emulator runs a new loop
        self._gate = asyncio.Semaphore(self._settings().delivery.concurrency)

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
        statuses: list[int | None] = []
        policy = self._settings().delivery
        for attempt in range(policy.max_attempts):
            settings = self._settings()
            if settings.webhook_url is None:
                self._finish(spec, DeliveryOutcome.NO_WEBHOOK, statuses, "no webhook configured")
                return
            status = await self._post(settings, spec, attempt)
            statuses.append(status)
            if status in SUCCESS:
                self._finish(spec, DeliveryOutcome.DELIVERED, statuses, None)
                return
            if status in NOT_RETRIED:
                self._finish(spec, DeliveryOutcome.DEAD_LETTERED, statuses, f"UndeliverableDueToHttp{status}")
                return
            if attempt + 1 < policy.max_attempts:
                await asyncio.sleep(policy.backoff * 2**attempt)
        self._finish(spec, DeliveryOutcome.DEAD_LETTERED, statuses, "MaxDeliveryAttemptsExceeded")

    async def _post(self, settings: Settings, spec: EventSpec, attempt: int) -> int | None:
        """POST one event; the HTTP status, or None when the connection failed or timed out."""
        rendering = events.Rendering(settings.schema, settings.casing, settings.topic, settings.subscription_name)
        url = settings.webhook_url or ""
        async with self._gate:
            try:
                session = self._client(settings)
                async with session.post(
                    url,
                    data=events.request_body(spec, rendering),
                    headers=events.request_headers(spec, rendering, attempt),
                ) as response:
                    await response.read()
                    return response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                logger.info("event delivery attempt failed event_id=%s error=%s", spec.event_id, type(exc).__name__)
                return None

    def _client(self, settings: Settings) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=settings.delivery.timeout)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    def _finish(
        self, spec: EventSpec, outcome: DeliveryOutcome, statuses: list[int | None], reason: str | None
    ) -> None:
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
            at=datetime.now(UTC),
        )
        self._log.append(record)
        logger.info(
            "event delivery finished event_type=%s event_id=%s outcome=%s attempts=%d",
            spec.event_type,
            spec.event_id,
            outcome,
            len(statuses),
        )
