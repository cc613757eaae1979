"""The priority lane's share of the reconcile timer, on Azurite: its poison queue is drained with the send
queue's, and a stuck high-priority request goes back to its own lane."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from shared.runtime import Services
from shared.validation import check_request, parse_request
from tests.bodies import sms
from tests.integration.conftest import Clock


async def test_the_reconcile_timer_drains_both_poison_queues(svc: Services) -> None:
    """What the host poisoned in either lane is recorded and removed; the depth counts both."""
    poisoned_high = base64.b64encode(sms("poison-high", priority="high")).decode()
    await svc.storage.queue(svc.settings.priority_poison_queue).send(poisoned_high)
    await svc.poison.send(base64.b64encode(sms("poison-normal")).decode())
    summary = await svc.reconcile.run()
    assert summary.poison_depth == 2 and summary.actions["dead-lettered"] == 2
    assert await svc.storage.queue(svc.settings.priority_poison_queue).depth() == 0
    assert await svc.poison.depth() == 0


async def test_a_stuck_high_priority_request_goes_back_to_its_own_lane(svc: Services, clock: Clock) -> None:
    """An HTTP-accepted request whose enqueue was lost is found by reconciliation and requeued in its lane."""
    for message_id, extra in (("stuck-high", {"priority": "high"}), ("stuck-normal", {})):
        request = parse_request(sms(message_id, **extra))
        checked = check_request(request, svc.settings, message_id, datetime.now(UTC))
        await svc.sending.steps.acceptance.accept(checked, "http")
    clock.advance(minutes=20)
    summary = await svc.reconcile.run()
    assert summary.actions["requeued"] == 2
    assert svc.priority_lane is not None
    [high] = await svc.priority_lane.receive(5)
    [normal] = await svc.outbound.receive(5)
    assert json.loads(base64.b64decode(high.text))["id"] == "stuck-high"
    assert json.loads(base64.b64decode(normal.text))["id"] == "stuck-normal"
