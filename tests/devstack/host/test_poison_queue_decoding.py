"""The runner, like the host, cannot hand a function on a `-poison` queue a message it cannot decode:
the extension's decode-failure handler calls HandlePoisonMessageAsync, which does nothing when the
trigger queue has no poison queue of its own, so the message stays under the 10-minute receive lock
(functions-host.md §1.4-1.5). The app records its poison queue from the reconcile timer for this
reason (shared/services/deadletter.py); this test pins the runner to the host's behaviour."""

from __future__ import annotations

from collections.abc import Callable

from azure.storage.queue import QueueServiceClient

from devstack.host.process import RunnerProcess
from tests.devstack.host.helpers import peek, unique, wait_for


def test_undecodable_text_on_a_poison_trigger_queue_stays_locked_and_never_runs(
    start_runner: Callable[..., RunnerProcess], queues: QueueServiceClient
) -> None:
    """Plain text on `<name>-poison` (the trigger's own queue) is received, not invoked, not moved,
    and left invisible under the receive lock: no message is visible and nothing is recorded."""
    names = {key: unique(key.split("_")[0].lower()) for key in ("FAIL_QUEUE", "OK_QUEUE", "OUT_QUEUE")}
    names["RAW_QUEUE"] = unique("raw") + "-poison"
    names["RECORD_QUEUE"] = unique("record")
    names["MISSING_QUEUE"] = unique("missing")
    for key in ("FAIL_QUEUE", "OK_QUEUE", "RAW_QUEUE", "RECORD_QUEUE"):
        queues.create_queue(names[key])
    runner = start_runner("queues", names)
    queues.get_queue_client(names["RAW_QUEUE"]).send_message("{not base64}")
    wait_for(lambda: "has no poison queue; leaving it locked" in runner.logs() or None)
    assert peek(queues, names["RAW_QUEUE"]) == []  # received and held, not visible
    assert names["RAW_QUEUE"] + "-poison" not in {q.name for q in queues.list_queues()}
    assert peek(queues, names["RECORD_QUEUE"]) == []  # the function never ran
