"""Graceful shutdown: SIGTERM lets fast invocations finish and never deletes an unfinished message."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from azure.storage.queue import QueueServiceClient

from devstack.host.process import RunnerProcess
from tests.devstack.host.helpers import b64, peek, unique, wait_for

GRACE_SECONDS = 3.0


@dataclass(frozen=True)
class Stopped:
    names: dict[str, str]
    exit_code: int
    records: list[str]


@pytest.fixture(scope="module")
def stopped(start_runner: Callable[..., RunnerProcess], queues: QueueServiceClient) -> Stopped:
    """Start the shutdown app, begin a slow and a fast invocation, then SIGTERM the runner."""
    names = {"SLOW_QUEUE": unique("slow"), "FAST_QUEUE": unique("fast"), "RECORD_QUEUE": unique("record")}
    for name in names.values():
        queues.create_queue(name)
    runner = start_runner("shutdown", names, grace_period=GRACE_SECONDS)
    queues.get_queue_client(names["SLOW_QUEUE"]).send_message(b64("slow"))
    queues.get_queue_client(names["FAST_QUEUE"]).send_message(b64("fast"))
    wait_for(lambda: {"started:slow", "started:fast"} <= set(peek(queues, names["RECORD_QUEUE"])))
    exit_code = runner.terminate()
    return Stopped(names, exit_code, peek(queues, names["RECORD_QUEUE"]))


def test_sigterm_exits_cleanly_after_the_grace_period(stopped: Stopped) -> None:
    """The runner exits with code 0 once in-flight work is done or abandoned."""
    assert stopped.exit_code == 0


def test_fast_in_flight_invocation_finishes_and_is_deleted(stopped: Stopped, queues: QueueServiceClient) -> None:
    """An invocation that completes within the grace period finishes and its message is deleted."""
    assert "finished:fast" in stopped.records
    assert queues.get_queue_client(stopped.names["FAST_QUEUE"]).get_queue_properties().approximate_message_count == 0


def test_unfinished_invocation_keeps_its_message(stopped: Stopped, queues: QueueServiceClient) -> None:
    """A slow invocation cut off by shutdown never finishes and its message stays in the queue."""
    assert "finished:slow" not in stopped.records
    assert queues.get_queue_client(stopped.names["SLOW_QUEUE"]).get_queue_properties().approximate_message_count == 1
