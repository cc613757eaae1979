"""Queue trigger semantics of the runner against Azurite: retries, poison queue, encoding, outputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueServiceClient

from devstack.host.process import RunnerProcess
from tests.devstack.host.helpers import b64, peek, unb64, unique, wait_for

MAX_DEQUEUE_COUNT = 3  # apps/queues/host.json


@dataclass(frozen=True)
class QueueApp:
    runner: RunnerProcess
    names: dict[str, str]

    def records(self, queues: QueueServiceClient, function: str, body: str | None = None) -> list[dict[str, object]]:
        found = [json.loads(text) for text in peek(queues, self.names["RECORD_QUEUE"])]
        return [r for r in found if r["function"] == function and body in (None, r["body"])]


@pytest.fixture(scope="module")
def queue_app(start_runner: Callable[..., RunnerProcess], queues: QueueServiceClient) -> QueueApp:
    names = {key: unique(key.split("_")[0].lower()) for key in ("FAIL_QUEUE", "OK_QUEUE", "OUT_QUEUE", "RAW_QUEUE")}
    names["RECORD_QUEUE"] = unique("record")
    names["MISSING_QUEUE"] = unique("missing")
    for key in ("FAIL_QUEUE", "OK_QUEUE", "RAW_QUEUE", "RECORD_QUEUE"):
        queues.create_queue(names[key])  # the host never creates a trigger queue
    return QueueApp(start_runner("queues", names), names)


def test_failing_message_is_invoked_max_dequeue_count_times(queue_app: QueueApp, queues: QueueServiceClient) -> None:
    """A message that always fails is invoked once per dequeue, 1..maxDequeueCount, and no more."""
    queues.get_queue_client(queue_app.names["FAIL_QUEUE"]).send_message(b64("doomed"))
    wait_for(lambda: peek(queues, queue_app.names["FAIL_QUEUE"] + "-poison"))
    records = queue_app.records(queues, "always_fails", "doomed")
    counts = sorted(int(str(r["dequeue_count"])) for r in records)
    assert counts == list(range(1, MAX_DEQUEUE_COUNT + 1))


def test_exhausted_message_lands_in_poison_queue_with_its_body(queue_app: QueueApp, queues: QueueServiceClient) -> None:
    """After maxDequeueCount failures the original body is in `<queue>-poison` and gone from the queue."""
    queues.get_queue_client(queue_app.names["FAIL_QUEUE"]).send_message(b64("poison me"))
    poisoned = wait_for(
        lambda: [m for m in peek(queues, queue_app.names["FAIL_QUEUE"] + "-poison") if unb64(m) == "poison me"]
    )
    assert len(poisoned) == 1
    assert wait_for(
        lambda: (
            queues.get_queue_client(queue_app.names["FAIL_QUEUE"]).get_queue_properties().approximate_message_count == 0
        )
    )


def test_plain_text_on_a_base64_queue_is_poisoned_without_invocation(
    queue_app: QueueApp, queues: QueueServiceClient
) -> None:
    """Text that is not base64 goes to the poison queue as is, and the function never runs."""
    queues.get_queue_client(queue_app.names["RAW_QUEUE"]).send_message('{"plain": true}')
    poisoned = wait_for(lambda: peek(queues, queue_app.names["RAW_QUEUE"] + "-poison"))
    assert poisoned == ['{"plain": true}']
    assert queue_app.records(queues, "records_raw") == []


def test_success_deletes_the_message_and_writes_queue_outputs(queue_app: QueueApp, queues: QueueServiceClient) -> None:
    """A succeeding function's Out[str] and Out[List[str]] values arrive base64-encoded; its message is deleted."""
    queues.get_queue_client(queue_app.names["OK_QUEUE"]).send_message(b64("hello"))
    outputs = wait_for(
        lambda: (
            [unb64(m) for m in peek(queues, queue_app.names["OUT_QUEUE"])]
            if len(peek(queues, queue_app.names["OUT_QUEUE"])) >= 3
            else None
        )
    )
    assert sorted(outputs) == ["many-1:hello", "many-2:hello", "single:hello"]
    assert queues.get_queue_client(queue_app.names["OK_QUEUE"]).get_queue_properties().approximate_message_count == 0


def test_missing_trigger_queue_is_polled_but_never_created(queue_app: QueueApp, queues: QueueServiceClient) -> None:
    """The host never creates a trigger queue: a missing one is only polled with backoff."""
    wait_for(lambda: f"Queue '{queue_app.names['MISSING_QUEUE']}' does not exist yet" in queue_app.runner.logs())
    with pytest.raises(ResourceNotFoundError):
        queues.get_queue_client(queue_app.names["MISSING_QUEUE"]).get_queue_properties()
