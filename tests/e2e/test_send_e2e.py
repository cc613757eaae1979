"""The send pipeline through the local Functions runner: issue-level guarantees."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter

from devstack.eventgrid import LocalTopic
from devstack.feedsink import FeedSink
from shared.models import Status
from shared.services.acceptance import STUCK_AFTER
from shared.status import TERMINAL
from tests.bodies import email, sms, whatsapp
from tests.e2e.conftest import all_final, wait_until
from tests.e2e.test_feed_e2e import MAKERS, fed_stack, sweep_until_caught_up

SENT_OR_LATER = frozenset(TERMINAL | {Status.SENT})


async def test_one_request_per_channel_goes_end_to_end(make_stack) -> None:  # type: ignore[no-untyped-def]
    """HTTP intake to final status for SMS, email and WhatsApp, with the history through the API."""
    stack = await make_stack()
    for body in (sms("e2e-1"), email("e2e-2"), whatsapp("e2e-3", to="+14255550107")):
        status, reply = stack.http("POST", "/api/messages", json.loads(body))
        assert status == 202 and reply["location"].endswith(reply["id"])
    expected = {"e2e-1": Status.DELIVERED, "e2e-2": Status.DELIVERED, "e2e-3": Status.READ}

    async def done() -> bool:
        return await stack.statuses(list(expected)) == expected

    await wait_until(done, 30, "three messages to reach their final status")
    status, view = stack.http("GET", "/api/messages/e2e-1")
    assert status == 200
    assert [t["status"] for t in view["transitions"]] == ["Accepted", "Sending", "Sent", "Delivered"]
    assert "code for" not in json.dumps(view)


async def test_http_rejects_bad_requests_with_field_errors(make_stack) -> None:  # type: ignore[no-untyped-def]
    """POST /api/messages answers 400 with the field that is wrong (nothing is queued), and 409 for an id
    that a different request already holds."""
    stack = await make_stack()
    status, reply = stack.http("POST", "/api/messages", {"channel": "sms", "to": "12", "content": {"text": "x"}})
    assert status == 400
    assert reply["errors"][0]["field"] == "to"
    assert stack.http("GET", "/api/messages/nothing-here")[0] == 404
    # An id is an idempotency key: the same request again is fine, a different one under it is a 409.
    assert stack.http("POST", "/api/messages", json.loads(sms("e2e-id", text="first")))[0] == 202
    assert stack.http("POST", "/api/messages", json.loads(sms("e2e-id", text="first")))[0] == 202
    status, reply = stack.http("POST", "/api/messages", json.loads(sms("e2e-id", text="second")))
    assert status == 409 and reply["errors"][0]["field"] == "id"


async def test_same_id_via_queue_and_http_is_one_send(make_stack) -> None:  # type: ignore[no-untyped-def]
    """The same id three times (HTTP, queue, queue) is one send at the emulator."""
    stack = await make_stack()
    body = sms("mixed-1")
    stack.http("POST", "/api/messages", json.loads(body))
    for _ in range(2):
        await stack.svc.outbound.send(body.decode())
    await wait_until(lambda: all_final(stack, ["mixed-1"]), 30, "the message to finish")
    await asyncio.sleep(1.0)  # let the duplicates be processed too
    assert len([s for s in stack.acs.sends() if s.tag == "mixed-1"]) == 1


async def test_503_every_time_ends_dead_lettered_with_reason_and_payload(make_stack) -> None:  # type: ignore[no-untyped-def]
    """After the app's backoff budget and then maxDequeueCount failures, the message is DeadLettered with
    the provider's answer."""
    stack = await make_stack(
        RECONCILE_SCHEDULE="*/2 * * * * *",  # the timer records the poison queue
        SEND_RETRY=json.dumps({"baseSeconds": 0.5, "capSeconds": 1, "attempts": 2}),
    )
    stack.acs.add_fault("503", count=100, channel="sms")
    await stack.svc.outbound.send(sms("always-503").decode())

    async def dead() -> bool:
        return (await stack.statuses(["always-503"]))["always-503"] == Status.DEAD_LETTERED

    await wait_until(dead, 60, "the message to be dead-lettered")
    row = await stack.svc.ledger.get("always-503")
    # 1 first attempt + 2 backoff retries + 4 more deliveries by the host (maxDequeueCount 5)
    assert row is not None and "503" in row.get("Reason") and row.attempts == 1 + 2 + 4
    assert json.loads(row.payload or "{}")["to"] == "+14255550100"


async def test_a_429_storm_delays_sms_without_poisoning_and_email_flows(make_stack) -> None:  # type: ignore[no-untyped-def]
    """30 s of 429 on SMS: all SMS are sent afterwards, none poisoned, and email is sent meanwhile."""
    stack = await make_stack()
    stack.acs.add_fault("429", seconds=30, retryAfter=2, channel="sms")
    sms_ids = [f"storm-sms-{i}" for i in range(20)]
    mail_ids = [f"storm-mail-{i}" for i in range(10)]
    for message_id in sms_ids:
        await stack.svc.intake.submit(sms(message_id))
    for message_id in mail_ids:
        await stack.svc.intake.submit(email(message_id))
    await wait_until(lambda: all_final(stack, mail_ids, SENT_OR_LATER), 20, "email to flow during the storm")
    assert not any(s.tag in sms_ids for s in stack.acs.sends("sms"))
    await wait_until(lambda: all_final(stack, sms_ids, SENT_OR_LATER), 90, "SMS to go out after the storm")
    statuses = await stack.statuses(sms_ids)
    assert Status.DEAD_LETTERED not in statuses.values()
    assert await stack.svc.poison.depth() == 0
    assert Counter(s.tag for s in stack.acs.sends("sms")) == Counter(sms_ids)


async def test_runner_killed_five_times_loses_nothing_and_sends_nothing_twice(
    make_stack, feed: tuple[LocalTopic, FeedSink]
) -> None:  # type: ignore[no-untyped-def]
    """300 mixed requests (duplicate, reordered and reversed reports among them), SIGKILL at random moments
    five times: all end terminal or Unknown, zero duplicate sends; and the status feed's subscriber ends
    with exactly the ledger's history of every message after dedupe by id (issue 17)."""
    topic, sink = feed
    # ACS calls that may wait 10 s (2 s sends below): an email a killed runner held is trusted for 30 s.
    timeouts = json.dumps({"connectSeconds": 2, "readSeconds": 8})
    stack = await fed_stack(make_stack, topic, ACS_TIMEOUTS=timeouts)
    # Keep sends in flight when the kills land: 300 sends, at most 48 at once (host.json), of 2 s each.
    stack.acs.add_fault("latency", seconds=120, latencyMs=2000)
    ids = [f"kill-{i}" for i in range(300)]
    for i, message_id in enumerate(ids):
        await stack.svc.intake.submit(MAKERS[i % len(MAKERS)](message_id))
    rng = random.Random(7)
    for _ in range(5):
        await asyncio.sleep(rng.uniform(0.3, 1.5))
        assert stack.runner is not None
        stack.runner.kill()
        stack.start_runner()
    # Messages held by a killed worker stay locked for 10 minutes; reconciliation re-drives their rows.
    stack.clock.advance(seconds=STUCK_AFTER.total_seconds() + 60)
    summary = await stack.svc.reconcile.run()
    assert summary.actions["requeued"] + summary.actions["redriven"] > 0  # the kills did strand work
    await wait_until(lambda: all_final(stack, ids, SENT_OR_LATER | {Status.UNKNOWN}), 120, "all 300 to settle")
    statuses = await stack.statuses(ids)
    assert all(s is not None for s in statuses.values())
    unknown = [await stack.svc.ledger.get(i) for i, s in statuses.items() if s == Status.UNKNOWN]
    assert all(row is not None and row.get("Reason") for row in unknown)
    assert stack.acs.duplicates() == []
    await asyncio.sleep(3)  # the last reports
    assert await sweep_until_caught_up(stack, sink, ids, timeout=60) == []
