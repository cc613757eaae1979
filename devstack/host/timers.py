"""Timer triggers (`TimerListener`): schedule, runOnStartup, past-due catch-up, no overlap.

Why: the host's timer rules are easy to misremember: past due wins over runOnStartup (never both);
invocations never overlap; the next occurrence is computed from the invocation's start, and if it
has already passed the timer fires once immediately (one catch-up, not one per missed slot);
exceptions are logged and the schedule goes on. Each listener runs only while its instance holds the
singleton lease (`singleton.py`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from azure.functions import meta

from devstack.host.invoker import Executor, LoadedFunction
from devstack.host.ncrontab import CrontabSchedule
from devstack.host.schedule_monitor import DEFAULT_DATETIME, ScheduleMonitor, ScheduleStatus, next_occurrence
from devstack.host.singleton import ListenerLock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimerTrigger:
    function: LoadedFunction
    schedule: CrontabSchedule
    run_on_startup: bool
    use_monitor: bool

    @property
    def timer_name(self) -> str:
        """`Host.Functions.{name}`: the name the host uses for script functions' timers and locks."""
        return f"Host.Functions.{self.function.name}"


class TimerListener:
    def __init__(
        self, trigger: TimerTrigger, executor: Executor, monitor: ScheduleMonitor | None, zone: tzinfo
    ) -> None:
        self.trigger = trigger
        self._executor = executor
        self._monitor = monitor if trigger.use_monitor else None
        self._zone = zone
        self._status: ScheduleStatus | None = None
        self._invoking = False
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"timer:{self.trigger.function.name}")
        self._task.add_done_callback(self._log_crash)

    def _log_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("Timer '%s' stopped unexpectedly", self.trigger.function.name, exc_info=task.exception())

    def stop(self) -> None:
        """Stop the schedule; an invocation already running is left to finish."""
        self._stopping = True
        if self._task is not None and not self._invoking:
            self._task.cancel()

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    def _now(self) -> datetime:
        return datetime.now(self._zone)

    async def _run(self) -> None:
        now = self._now()
        past_due = await self._load_status(now)
        if past_due:
            log.info("Timer '%s' is past due", self.trigger.function.name)
            await self._invoke(self._now(), is_past_due=True)
        elif self.trigger.run_on_startup:
            log.info("Timer '%s' runs on startup", self.trigger.function.name)
            await self._invoke(self._now(), unscheduled=True)
        while not self._stopping:
            assert self._status is not None
            delay = (self._status.next.astimezone(UTC) - datetime.now(UTC)).total_seconds()
            await asyncio.sleep(max(delay, 0.0))
            await self._invoke(self._now())

    async def _load_status(self, now: datetime) -> bool:
        status = None
        past_due = False
        if self._monitor is not None:
            stored = await self._monitor.get_status(self.trigger.timer_name)
            duration, status = await self._monitor.check_past_due(
                self.trigger.timer_name, now, self.trigger.schedule, stored
            )
            past_due = bool(duration)
        self._status = status or ScheduleStatus(
            DEFAULT_DATETIME, next_occurrence(self.trigger.schedule, now, self._zone), DEFAULT_DATETIME
        )
        return past_due

    async def _invoke(self, invoked_at: datetime, is_past_due: bool = False, unscheduled: bool = False) -> None:
        assert self._status is not None
        self._invoking = True
        try:
            await self._executor.execute(self.trigger.function, self._timer_info(is_past_due), {})
        finally:
            self._invoking = False
        adjusted = invoked_at
        if not is_past_due and not unscheduled and self._status.next > invoked_at:
            adjusted = self._status.next  # fired a little early: count it as the scheduled slot
        self._status = ScheduleStatus(adjusted, next_occurrence(self.trigger.schedule, adjusted, self._zone), adjusted)
        if self._monitor is not None:
            await self._monitor.update_status(self.trigger.timer_name, self._status)

    def _timer_info(self, is_past_due: bool) -> meta.Datum:
        status = self._status.to_json() if self._monitor is not None and self._status is not None else None
        info = {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": status, "IsPastDue": is_past_due}
        return meta.Datum(json.dumps(info), "json")


class LeasedTimer:
    """A timer listener that runs only while this instance holds its singleton lease."""

    def __init__(
        self, trigger: TimerTrigger, executor: Executor, monitor: ScheduleMonitor | None, zone: tzinfo
    ) -> None:
        self.trigger = trigger
        self._executor = executor
        self._monitor = monitor
        self._zone = zone
        self.listener: TimerListener | None = None
        self.lock: ListenerLock | None = None

    async def on_acquired(self) -> None:
        # A fresh listener each time the lease is won: status is re-read, as on a host start.
        self.listener = TimerListener(self.trigger, self._executor, self._monitor, self._zone)
        self.listener.start()

    async def on_lost(self) -> None:
        if self.listener is not None:
            self.listener.stop()
            if self.listener.task is not None:
                await asyncio.gather(self.listener.task, return_exceptions=True)

    def start(self) -> None:
        assert self.lock is not None
        self.lock.start()

    def stop(self) -> None:
        if self.lock is not None:
            self.lock.stop_competing()
        if self.listener is not None:
            self.listener.stop()

    @property
    def in_flight(self) -> set[asyncio.Task[None]]:
        task = self.listener.task if self.listener is not None else None
        return {task} if task is not None and not task.done() else set()

    async def close(self) -> None:
        if self.lock is not None:
            await self.lock.release()
