"""The priority lane through the local Functions runner (issue 19): a high-priority request is sent while
a normal backlog is still queued, and its waits stay in its own lane. Not timed: the assertions are about
order, not about seconds."""

from __future__ import annotations

import asyncio
import json

from shared.client import ContactMessagesClient
from shared.models import Status
from tests.bodies import sms
from tests.e2e.conftest import Stack, wait_until

BACKLOG = 300
SENT_OR_LATER = frozenset({Status.SENT, Status.DELIVERED, Status.READ})


async def _enqueue_backlog(stack: Stack, ids: list[str]) -> None:
    assert stack.svc.priority_lane is not None
    client = ContactMessagesClient(stack.svc.outbound, priority_queue=stack.svc.priority_lane)
    for start in range(0, len(ids), 50):
        await asyncio.gather(*(client.enqueue(json.loads(sms(i))) for i in ids[start : start + 50]))


async def _unsent(stack: Stack, ids: list[str]) -> int:
    return sum(1 for status in (await stack.statuses(ids)).values() if status not in SENT_OR_LATER)


async def test_a_high_priority_request_is_sent_while_the_normal_backlog_is_queued(make_stack) -> None:  # type: ignore[no-untyped-def]
    """Every ACS answer takes 1 s, so the backlog drains for many seconds; a code posted over HTTP once the
    backlog is moving reaches ACS before most of the backlog does."""
    stack = await make_stack()
    stack.acs.add_fault("latency", seconds=120, latencyMs=1000)
    backlog = [f"bulk-{n}" for n in range(BACKLOG)]
    await _enqueue_backlog(stack, backlog)

    async def moving() -> bool:
        return await _unsent(stack, backlog) < BACKLOG

    await wait_until(moving, 30, "the backlog to start draining")
    code = json.loads(sms("code-1", text="your code is 123456"))
    status, _ = stack.http("POST", "/api/messages", {**code, "priority": "high"})
    assert status == 202

    async def code_sent() -> bool:
        return (await stack.statuses(["code-1"]))["code-1"] in SENT_OR_LATER

    await wait_until(code_sent, 30, "the high-priority request to be sent")
    # Judged by the order in which the sends reached ACS, not by a later look at the ledger and the
    # queue: on a loaded machine those reads can take longer than the rest of the backlog takes to drain.
    tags = [send.tag for send in stack.acs.sends()]
    ahead = tags.index("code-1")
    assert ahead < BACKLOG // 2, f"{ahead} of the backlog reached ACS before the code: it waited behind it"


async def test_a_high_priority_request_waits_out_a_pause_in_its_own_lane(make_stack) -> None:  # type: ignore[no-untyped-def]
    """Pause holds a high-priority request as it holds any other (requeued in the priority lane, not sent);
    on resume the priority trigger sends it."""
    stack = await make_stack()
    await stack.svc.control.pause("sms", actor="test", reason="incident", now=stack.clock())
    status, _ = stack.http("POST", "/api/messages", {**json.loads(sms("code-paused")), "priority": "high"})
    assert status == 202
    await asyncio.sleep(4.0)  # the priority trigger has seen it, and put it back for later
    assert (await stack.statuses(["code-paused"]))["code-paused"] == Status.ACCEPTED
    assert not [s for s in stack.acs.sends() if s.tag == "code-paused"]
    await stack.svc.control.resume("sms", actor="test", reason="over", now=stack.clock())

    async def sent() -> bool:
        return (await stack.statuses(["code-paused"]))["code-paused"] in SENT_OR_LATER

    await wait_until(sent, 40, "the held request to be sent after resume")
