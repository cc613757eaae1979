"""Timer triggers in the runner: runOnStartup, schedule status, retry policy, singleton lease."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from azure.storage.blob import BlobServiceClient

from devstack.azurite import Azurite
from devstack.host.process import RunnerProcess
from tests.devstack.host.helpers import http, unique, wait_for

ALL_TIMERS = ("startup_timer", "every_second", "retried_timer")


def only(*enabled: str) -> dict[str, str]:
    """Settings that disable every timer of the app except `enabled`."""
    return {f"AzureWebJobs.{name}.Disabled": "true" for name in ALL_TIMERS if name not in enabled}


def count(runner: RunnerProcess, text: str) -> int:
    return runner.logs().count(text)


@pytest.fixture(scope="module")
def startup(start_runner: Callable[..., RunnerProcess]) -> RunnerProcess:
    return start_runner("timers", only("startup_timer", "retried_timer"), host_id=unique("startup"))


def test_run_on_startup_timer_runs_exactly_once(startup: RunnerProcess) -> None:
    """A runOnStartup timer whose schedule is far away runs once at start and not again."""
    wait_for(lambda: count(startup, "startup_timer ran past_due=False"))
    time.sleep(1.0)  # give a wrong second run the chance to happen
    assert count(startup, "Executed 'Functions.startup_timer' (Succeeded") == 1


def test_monitored_timer_writes_its_schedule_status_blob(startup: RunnerProcess, azurite: Azurite) -> None:
    """useMonitor keeps Last/Next/LastUpdated in azure-webjobs-hosts/timers/{hostId}/Host.Functions.{name}/status."""
    host_id = http("GET", f"{startup.url}/admin/host/status").json()["id"]
    blob = BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(
        "azure-webjobs-hosts", f"timers/{host_id}/Host.Functions.startup_timer/status"
    )
    status = wait_for(lambda: json.loads(blob.download_blob().readall()) if blob.exists() else None)
    assert set(status) == {"Last", "Next", "LastUpdated"}


def test_retry_policy_reruns_a_failing_timer(startup: RunnerProcess) -> None:
    """`@app.retry(max_retry_count=2)` gives a failing timer 3 attempts with retry_count 0, 1, 2."""
    wait_for(lambda: count(startup, "retried_timer retry_count=2"))
    assert [count(startup, f"retried_timer retry_count={n}") for n in range(3)] == [1, 1, 1]


def test_two_runners_sharing_a_host_id_run_one_timer(start_runner: Callable[..., RunnerProcess]) -> None:
    """Only the instance holding the singleton lease runs the timer; the other one waits."""
    host_id = unique("shared")
    first = start_runner("timers", {**only("every_second"), "INSTANCE": "first"}, host_id=host_id)
    second = start_runner("timers", {**only("every_second"), "INSTANCE": "second"}, host_id=host_id)
    runs = lambda: (count(first, "every_second ran"), count(second, "every_second ran"))  # noqa: E731
    wait_for(lambda: max(runs()) >= 3)
    assert min(runs()) == 0


def test_lease_passes_to_the_other_runner_when_the_holder_stops(start_runner: Callable[..., RunnerProcess]) -> None:
    """When the lease holder shuts down gracefully, the waiting instance takes the timer over."""
    host_id = unique("handover")
    first = start_runner("timers", {**only("every_second"), "INSTANCE": "first"}, host_id=host_id)
    wait_for(lambda: count(first, "every_second ran"))
    second = start_runner("timers", {**only("every_second"), "INSTANCE": "second"}, host_id=host_id)
    first.terminate()
    assert wait_for(lambda: count(second, "every_second ran"), timeout=10) >= 1


def test_missed_occurrence_runs_once_as_past_due(start_runner: Callable[..., RunnerProcess], azurite: Azurite) -> None:
    """A status blob whose Next has passed makes the timer run once with IsPastDue (instead of runOnStartup)."""
    host_id = unique("pastdue")
    status = {
        "Last": "2020-01-01T00:00:00+00:00",
        "Next": "2021-01-01T00:00:00+00:00",
        "LastUpdated": "2020-01-01T00:00:00+00:00",
    }
    container = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(
        "azure-webjobs-hosts"
    )
    if not container.exists():
        container.create_container()
    container.upload_blob(f"timers/{host_id}/Host.Functions.startup_timer/status", json.dumps(status), overwrite=True)
    runner = start_runner("timers", only("startup_timer"), host_id=host_id)
    wait_for(lambda: count(runner, "Executed 'Functions.startup_timer'"))
    assert (count(runner, "past_due=True"), count(runner, "past_due=False")) == (1, 0)
