"""Fixtures for the runner tests: a queue client on the session Azurite and a runner factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.storage.queue import QueueServiceClient

from devstack.azurite import Azurite
from devstack.host.process import RunnerProcess
from tests.devstack.host.helpers import APPS


@pytest.fixture(scope="session")
def queues(azurite: Azurite) -> QueueServiceClient:
    """A sync queue service client on the session Azurite."""
    return QueueServiceClient.from_connection_string(azurite.connection_string)


@pytest.fixture(scope="module")
def start_runner(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunnerProcess]]:
    """Start runners for a module; all are stopped when the module ends."""
    started: list[RunnerProcess] = []

    def start(app: str, env: dict[str, str] | None = None, **options: Any) -> RunnerProcess:
        log_path = tmp_path_factory.mktemp(app) / "runner.log"
        runner = RunnerProcess(
            APPS / app, env=env or {}, storage=azurite.connection_string, log_path=log_path, **options
        ).start()
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner.kill()
