"""The app runs on the oldest azure-functions a Python 3.11 worker bundled, placed where the worker puts
it: ahead of the app's own packages (`--worker-packages`, PYTHON_ISOLATE_WORKER_DEPENDENCIES unset).

The version is pinned in requirements-worker-oldest.txt (why that one is written there) and installed
into .devstack/worker-oldest from PyPI by `make worker-oldest` or, failing that, by this module.
Each case sends through `send_message` and records the emulator's delivery reports through
`record_event`, so the queue binding, the Event Grid binding and the app's handlers all meet the old
library.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devstack.acs import AcsEmulator
from devstack.azurite import Azurite
from devstack.host.process import PROJECT_ROOT, RunnerProcess
from devstack.host.worker_packages import ensure_installed
from shared.client import ContactMessagesClient
from shared.models import Status
from shared.runtime import build_services
from shared.settings import load_settings
from tests.e2e.conftest import wait_until
from tests.integration.conftest import app_env

OLDEST = "1.15.0"
APP_PINNED = "1.26.0"


@pytest.fixture(scope="module")
def oldest_packages() -> Path:
    requirements = PROJECT_ROOT / "requirements-worker-oldest.txt"
    return ensure_installed(requirements, PROJECT_ROOT / ".devstack" / "worker-oldest")


@pytest.fixture
async def pipeline(
    request: pytest.FixtureRequest, azurite: Azurite, oldest_packages: Path, tmp_path: Path
) -> AsyncIterator[tuple[RunnerProcess, dict[str, str]]]:
    schema, isolate = request.param
    acs = AcsEmulator(report_delay=0.1, event_schema=schema).start()
    env = app_env(azurite, acs, PYTHON_ISOLATE_WORKER_DEPENDENCIES="1" if isolate else "0")
    runner = RunnerProcess(
        PROJECT_ROOT,
        env=env,
        storage=azurite.connection_string,
        log_path=tmp_path / "runner.log",
        extra_args=["--worker-packages", str(oldest_packages)],
    ).start()
    acs.set_webhook(f"{runner.url}/runtime/webhooks/eventgrid?functionName=record_event")
    try:
        yield runner, env
    finally:
        runner.terminate()
        acs.stop()


REQUESTS = [
    {"channel": "sms", "to": "+14255550100", "content": {"text": "hello"}},
    {"channel": "email", "to": "someone@example.com", "content": {"subject": "s", "text": "t"}},
]


async def delivered(env: dict[str, str]) -> list[Status | None]:
    """Send two messages through the queue and wait until both reports are recorded."""
    client = ContactMessagesClient.from_connection_string(env["AzureWebJobsStorage"], env["SEND_QUEUE"])
    svc = await build_services(load_settings(env))
    try:
        await client.ensure_queue()
        ids = [await client.enqueue(request) for request in REQUESTS]

        async def statuses() -> list[Status | None]:
            rows = [await svc.ledger.get(message_id) for message_id in ids]
            return [row.status if row else None for row in rows]

        async def all_delivered() -> bool:
            return all(status == Status.DELIVERED for status in await statuses())

        await wait_until(all_delivered, 45, "both messages Delivered")
        return await statuses()
    finally:
        await client.close()
        await svc.close()


@pytest.mark.parametrize("pipeline", [("eventgrid", False)], indirect=True, ids=["eventgrid-schema"])
async def test_the_app_runs_on_the_oldest_bundled_azure_functions(
    pipeline: tuple[RunnerProcess, dict[str, str]],
) -> None:
    runner, env = pipeline
    assert await delivered(env) == [Status.DELIVERED, Status.DELIVERED]
    assert f"uses azure-functions {OLDEST}" in runner.logs()
    assert "AttributeError" not in runner.logs()


@pytest.mark.parametrize("pipeline", [("cloudevents", True)], indirect=True, ids=["cloudevents-isolated"])
async def test_cloudevents_need_the_apps_own_library_which_isolation_loads(
    pipeline: tuple[RunnerProcess, dict[str, str]],
) -> None:
    """An old library decodes a CloudEvents delivery without type, source and time; with
    PYTHON_ISOLATE_WORKER_DEPENDENCIES the app's pinned azure-functions is imported instead."""
    runner, env = pipeline
    assert await delivered(env) == [Status.DELIVERED, Status.DELIVERED]
    assert f"uses azure-functions {APP_PINNED}" in runner.logs()
