"""Delivery events through the runner's Event Grid webhook: the ledger agrees with the emulator's truth."""

from __future__ import annotations

import json
import uuid
from collections import Counter

from devstack.acs import DEFAULT_TOPIC
from shared.models import Status
from shared.services.correlation import WAIT_FOR_SEND_SECONDS
from shared.status import TERMINAL
from tests.bodies import email, sms, whatsapp
from tests.e2e.conftest import all_final, wait_until
from tests.integration.conftest import SMS_SENDER

TRUTH_TO_STATUS = {
    "Delivered": Status.DELIVERED,
    "Read": Status.READ,
    "Failed": Status.FAILED,
    "Bounced": Status.FAILED,
    "Suppressed": Status.FAILED,
    "Quarantined": Status.FAILED,
    "FilteredSpam": Status.FAILED,
    "NoReport": Status.SENT,
    "Rejected": Status.FAILED,
}
EMAIL_TAGS = [
    "",
    "+bounce",
    "+quarantined",
    "+filtered",
    "+failed",
    "+expanded",
    "+noreport",
    "+late",
    "+duplicate",
    "+reorder",
    "+engage",
    "+opfail",
]


def _number(i: int) -> str:
    """A unique number per message whose last two digits pick the emulator's outcome (00-07)."""
    return f"+1425{i:05d}{i % 8:02d}"


def _scenario(n: int) -> dict[str, bytes]:
    """n requests cycling through every simulated outcome of every channel."""
    bodies: dict[str, bytes] = {}
    for i in range(n):
        message_id = f"mix-{i}"
        kind = i % 3
        if kind == 0:
            bodies[message_id] = sms(message_id, to=_number(i))
        elif kind == 1:
            bodies[message_id] = email(message_id, to=f"u{i}{EMAIL_TAGS[i % len(EMAIL_TAGS)]}@example.com")
        else:
            bodies[message_id] = whatsapp(message_id, to=_number(i))
    return bodies


async def test_500_mixed_outcomes_match_the_emulators_ground_truth(make_stack) -> None:  # type: ignore[no-untyped-def]
    """Duplicates, reordering, late and missing reports: every ledger row ends where the emulator says."""
    stack = await make_stack(report_delay=0.2)
    await _mixed_outcomes_match(stack, 500)


async def test_batched_deliveries_match_the_emulators_ground_truth(make_stack) -> None:  # type: ignore[no-untyped-def]
    """With up to 10 events per delivery (the deployment's setting), every event of every batch is recorded."""
    stack = await make_stack(report_delay=0.2, emulator={"max_events_per_batch": 10})
    await _mixed_outcomes_match(stack, 200)
    ended_together = Counter(record.at for record in stack.acs.events())
    assert max(ended_together.values()) > 1, "no delivery carried more than one event"
    assert max(ended_together.values()) <= 10


async def _mixed_outcomes_match(stack, n: int) -> None:  # type: ignore[no-untyped-def]
    bodies = _scenario(n)
    for body in bodies.values():
        await stack.svc.outbound.send(body.decode())
    settled = frozenset(TERMINAL | {Status.SENT})
    await wait_until(lambda: all_final(stack, list(bodies), settled), 120, f"{n} messages to be sent")

    by_recipient = {json.loads(body)["to"]: message_id for message_id, body in bodies.items()}

    async def agrees() -> bool:
        return not await _disagreements(stack, by_recipient)

    await wait_until(agrees, 60, "the ledger to agree with the emulator")
    assert stack.acs.duplicates() == []


async def _disagreements(stack, by_recipient: dict[str, str]) -> list[str]:  # type: ignore[no-untyped-def]
    wrong = []
    truths = stack.acs.truth()
    assert len(truths) == len(by_recipient)
    for truth in truths:
        message_id = by_recipient[truth.to if truth.to.startswith("+") or "@" in truth.to else f"+{truth.to}"]
        row = await stack.svc.ledger.get(message_id)
        expected = TRUTH_TO_STATUS[str(truth.final)]
        if row is None or row.status != expected:
            wrong.append(f"{message_id}: {row.status if row else None} != {expected}")
    return wrong


async def test_stop_then_start_through_the_webhook(make_stack) -> None:  # type: ignore[no-untyped-def]
    """An inbound STOP makes the next send Suppressed; START lets the one after through."""
    stack = await make_stack()
    stack.acs.inbound("+14255550166", SMS_SENDER, "STOP")
    await wait_until(lambda: _blocked(stack, True), 10, "the opt-out to be recorded")
    await stack.svc.outbound.send(sms("stopped", to="+14255550166").decode())
    await wait_until(lambda: all_final(stack, ["stopped"]), 20, "the suppressed message")
    assert (await stack.statuses(["stopped"]))["stopped"] == Status.SUPPRESSED
    stack.acs.inbound("+14255550166", SMS_SENDER, "start")
    await wait_until(lambda: _blocked(stack, False), 10, "the opt-in to be recorded")
    await stack.svc.outbound.send(sms("started", to="+14255550166").decode())
    await wait_until(lambda: all_final(stack, ["started"]), 20, "the delivered message")
    assert (await stack.statuses(["started"]))["started"] == Status.DELIVERED


async def _blocked(stack, blocked: bool) -> bool:  # type: ignore[no-untyped-def]
    from shared.models import Channel

    decision = await stack.svc.consent.check(Channel.SMS, "+14255550166", SMS_SENDER)
    return decision.allowed is not blocked


async def test_an_event_from_another_topic_is_ignored_through_the_webhook(make_stack) -> None:  # type: ignore[no-untyped-def]
    """A forged Failed report from a foreign topic is accepted (202) but changes nothing."""
    stack = await make_stack()
    await stack.svc.outbound.send(sms("victim").decode())
    await wait_until(lambda: all_final(stack, ["victim"]), 20, "delivery")
    row = await stack.svc.ledger.get("victim")
    assert row is not None
    forged = {
        "id": str(uuid.uuid4()),
        "topic": DEFAULT_TOPIC.replace("local-acs", "someone-else"),
        "subject": "/phonenumber/1",
        "eventType": "Microsoft.Communication.SMSDeliveryReportReceived",
        "eventTime": "2030-01-01T00:00:00Z",
        "dataVersion": "1.0",
        "data": {
            "messageId": row.get("ProviderMessageId"),
            "tag": "victim",
            "deliveryStatus": "Failed",
            "from": "1",
            "to": "2",
            "deliveryStatusDetails": "forged",
            "deliveryAttempts": [],
        },
    }
    status = _post_event(stack, [forged])
    assert status == 202
    assert (await stack.statuses(["victim"]))["victim"] == Status.DELIVERED


def _post_event(stack, events: list[dict[str, object]]) -> int:  # type: ignore[no-untyped-def]
    import urllib.request

    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{stack.runner.url}/runtime/webhooks/eventgrid?functionName=record_event",
        data=json.dumps(events).encode(),
        method="POST",
        headers={"aeg-event-type": "Notification", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return int(response.status)


async def test_the_same_event_five_times_through_the_webhook_is_one_row(make_stack) -> None:  # type: ignore[no-untyped-def]
    """Event Grid redelivery of one report: five 202s, one event row."""
    stack = await make_stack(report_delay=30)  # the emulator's own report comes too late to interfere
    await stack.svc.outbound.send(sms("redelivered").decode())
    sent = frozenset({Status.SENT})
    await wait_until(lambda: all_final(stack, ["redelivered"], sent), 20, "the send")
    row = await stack.svc.ledger.get("redelivered")
    assert row is not None
    event = {
        "id": "evt-1",
        "topic": DEFAULT_TOPIC,
        "subject": "/phonenumber/18005550100",
        "eventType": "Microsoft.Communication.SMSDeliveryReportReceived",
        "eventTime": "2030-01-01T00:00:00Z",
        "dataVersion": "1.0",
        "data": {
            "MessageId": row.get("ProviderMessageId"),
            "Tag": "redelivered",
            "DeliveryStatus": "Delivered",
            "From": "1",
            "To": "2",
            "ReceivedTimestamp": "2030-01-01T00:00:00Z",
        },
    }
    assert [_post_event(stack, [event]) for _ in range(5)] == [202] * 5
    table = stack.svc.storage.table(stack.svc.names.messages)
    rows = [r async for r in table.query("PartitionKey eq 'redelivered' and RowKey ne 'ledger|redelivered'")]
    assert len(rows) == 1
    assert (await stack.statuses(["redelivered"]))["redelivered"] == Status.DELIVERED


async def test_cloudevents_with_pascal_case_data_through_the_runner(make_stack) -> None:  # type: ignore[no-untyped-def]
    """A subscription using the CloudEvents schema, with PascalCase data keys, records the same outcomes."""
    stack = await make_stack(emulator={"event_schema": "cloudevents", "data_casing": "pascal"})
    bodies = {"ce-sms": sms("ce-sms"), "ce-mail": email("ce-mail"), "ce-wa": whatsapp("ce-wa", to="+14255550107")}
    for body in bodies.values():
        await stack.svc.outbound.send(body.decode())
    expected = {"ce-sms": Status.DELIVERED, "ce-mail": Status.DELIVERED, "ce-wa": Status.READ}

    async def done() -> bool:
        return await stack.statuses(list(expected)) == expected

    await wait_until(done, 30, "CloudEvents reports to be recorded")


async def test_statuses_that_beat_their_send_are_matched_whichever_worker_parked_them(make_stack) -> None:  # type: ignore[no-untyped-def]
    """WhatsApp statuses reach the webhook before the send's (slow) response, so whichever worker
    process receives one parks it. The sending worker looks for parked statuses after indexing the
    id, and the parking one looks for the index after parking, so every status is applied at once
    instead of waiting for the reconcile timer (disabled here)."""
    stack = await make_stack(report_delay=0.0, FUNCTIONS_WORKER_PROCESS_COUNT="2", RECONCILE_SCHEDULE="0 0 0 1 1 *")
    ids = [f"early-{i}" for i in range(8)]
    slower_than_the_wait = int((WAIT_FOR_SEND_SECONDS + 0.5) * 1000)  # so the statuses are parked
    stack.acs.add_fault("latency", channel="whatsapp", phase="after", latencyMs=slower_than_the_wait, count=len(ids))
    for message_id in ids:
        await stack.svc.outbound.send(whatsapp(message_id).decode())
    await wait_until(lambda: all_final(stack, ids), 30, "every early status to be applied")
    log = (stack.log_dir / "runner-0.log").read_text()
    assert log.count("event parked until its message is known") >= len(ids)  # the race did happen
