"""The local stack provisions storage the way the Bicep does, so a producer can enqueue at once."""

from __future__ import annotations

import uuid

from azure.storage.queue import QueueServiceClient

from devstack.stack import LocalStack


def test_both_lanes_and_their_poison_queues_exist_before_the_app_runs(storage_connection_string: str) -> None:
    """`stack start` creates the send queue, the priority lane and their poison queues (twice is harmless):
    the host never creates a trigger queue and the app creates its queues only on its first invocation,
    so an early enqueue used to meet a 404."""
    send_queue = f"provision-{uuid.uuid4().hex[:12]}"
    stack = LocalStack(ports={})
    stack.settings = {"AzureWebJobsStorage": storage_connection_string, "SEND_QUEUE": send_queue}

    stack._provision_queues()
    stack._provision_queues()

    with QueueServiceClient.from_connection_string(storage_connection_string) as service:
        names = {queue.name for queue in service.list_queues(name_starts_with=send_queue)}
        service.get_queue_client(send_queue).send_message("enqueued before any invocation")
    lanes = (send_queue, f"{send_queue}-priority")
    assert names == {queue for lane in lanes for queue in (lane, f"{lane}-poison")}
