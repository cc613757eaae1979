"""Timer schedule status (`useMonitor`): the past-due check and the status blob.

Why: with `useMonitor` the host remembers each timer's last and next occurrence in
`azure-webjobs-hosts/timers/{hostId}/Host.Functions.{name}/status`, and on start runs a missed
occurrence once (`IsPastDue`). The rules below are `ScheduleMonitor.CheckPastDueAsync` step by step,
including "the schedule changed and the recomputed next is already past -> recompute from now".
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob.aio import ContainerClient

from devstack.host.ncrontab import CrontabSchedule
from devstack.host.singleton import ensure_container

log = logging.getLogger(__name__)

DEFAULT_DATETIME = datetime(1, 1, 1)
_DEFAULT_THRESHOLD = datetime(1, 1, 2)


@dataclass(frozen=True)
class ScheduleStatus:
    last: datetime
    next: datetime
    last_updated: datetime

    def to_json(self) -> dict[str, str]:
        return {
            "Last": self.last.isoformat(),
            "Next": self.next.isoformat(),
            "LastUpdated": self.last_updated.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, str], zone: tzinfo) -> ScheduleStatus:
        return cls(*(_parse(data.get(key), zone) for key in ("Last", "Next", "LastUpdated")))


def _parse(value: str | None, zone: tzinfo) -> datetime:
    if not value:
        return DEFAULT_DATETIME
    moment = datetime.fromisoformat(value)
    if moment.year == 1:
        return DEFAULT_DATETIME
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def is_set(moment: datetime) -> bool:
    return moment.replace(tzinfo=None) > _DEFAULT_THRESHOLD


def next_occurrence(schedule: CrontabSchedule, after: datetime, zone: tzinfo) -> datetime:
    found = schedule.next_after(after.astimezone(zone))
    if found is None:
        raise ValueError(f"schedule '{schedule.expression}' never fires")
    return found


class ScheduleMonitor:
    def __init__(self, container: ContainerClient, host_id: str, zone: tzinfo) -> None:
        self._container = container
        self._host_id = host_id
        self._zone = zone

    def blob_name(self, timer_name: str) -> str:
        return f"timers/{self._host_id}/{timer_name}/status"

    async def get_status(self, timer_name: str) -> ScheduleStatus | None:
        try:
            stream = await self._container.download_blob(self.blob_name(timer_name))
            data = json.loads(await stream.readall())
        except ResourceNotFoundError:
            return None
        except (AzureError, ValueError) as exc:
            log.warning("Reading timer status for %s failed: %s", timer_name, exc)
            return None
        return ScheduleStatus.from_json(data, self._zone)

    async def update_status(self, timer_name: str, status: ScheduleStatus) -> None:
        """Best effort, like the host: a failed write is logged, not raised."""
        try:
            await self._upload(self.blob_name(timer_name), json.dumps(status.to_json()))
        except AzureError as exc:
            log.warning("Writing timer status for %s failed: %s", timer_name, exc)

    async def _upload(self, blob_name: str, body: str) -> None:
        try:
            await self._container.upload_blob(blob_name, body, overwrite=True)
        except ResourceNotFoundError:
            await ensure_container(self._container)
            await self._container.upload_blob(blob_name, body, overwrite=True)

    async def check_past_due(
        self, timer_name: str, now: datetime, schedule: CrontabSchedule, status: ScheduleStatus | None
    ) -> tuple[timedelta, ScheduleStatus | None]:
        """How far past due the timer is (zero if not), and the status as it now stands."""
        if status is None:
            initial = ScheduleStatus(DEFAULT_DATETIME, next_occurrence(schedule, now, self._zone), now)
            await self.update_status(timer_name, initial)
            return _past_due(now, initial.next), None
        base = status.last if is_set(status.last) else status.last_updated if is_set(status.last_updated) else now
        expected = next_occurrence(schedule, base, self._zone)
        if expected != status.next:
            # The schedule changed; a recomputed occurrence already in the past is not "missed".
            if now > expected:
                expected, base = next_occurrence(schedule, now, self._zone), now
            status = replace(status, last=DEFAULT_DATETIME, next=expected, last_updated=base)
            await self.update_status(timer_name, status)
        return _past_due(now, status.next), status


def _past_due(now: datetime, recorded_next: datetime) -> timedelta:
    return now - recorded_next if now > recorded_next else timedelta(0)
