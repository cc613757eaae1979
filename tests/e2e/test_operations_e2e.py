"""Reconciliation, replay and the pause switch, through the runner (issue: reconcile, replay, CLI)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from shared.models import Status
from shared.services.operator import OperatorService
from shared.status import TERMINAL
from tests.bodies import email, sms
from tests.e2e.conftest import all_final, wait_until

SENT_OR_LATER = frozenset(TERMINAL | {Status.SENT})


async def test_silent_sms_expire_after_the_sla_and_a_late_report_still_wins(make_stack) -> None:  # type: ignore[no-untyped-def]
    """10% of SMS never report: the reconcile timer expires them; a late real report turns one Delivered."""
    sla = json.dumps({"sms": 0.1, "email": 60, "whatsapp": 60})  # 6 seconds
    stack = await make_stack(RECONCILE_SCHEDULE="*/2 * * * * *", DELIVERY_SLA_MINUTES=sla)
    ids = [f"sla-{i}" for i in range(50)]
    for i, message_id in enumerate(ids):
        to = "+14255550102" if i % 10 == 0 else "+14255550100"  # ...02 never reports
        await stack.svc.outbound.send(sms(message_id, to=to).decode())
    await wait_until(lambda: all_final(stack, ids), 60, "every SMS to be Delivered or Expired")
    statuses = await stack.statuses(ids)
    assert Counter(statuses.values()) == {Status.DELIVERED: 45, Status.EXPIRED: 5}
    late = ids[0]
    row = await stack.svc.ledger.get(late)
    assert row is not None
    report = {
        "id": "late-1",
        "topic": stack.env["ACS_RESOURCE_IDS"],
        "subject": "/phonenumber/1",
        "eventType": "Microsoft.Communication.SMSDeliveryReportReceived",
        "eventTime": "2026-11-28T00:00:00Z",
        "data": {
            "messageId": row.get("ProviderMessageId"),
            "tag": late,
            "deliveryStatus": "Delivered",
            "from": "1",
            "to": "2",
            "receivedTimestamp": "2026-11-28T00:00:00Z",
        },
    }
    assert await stack.svc.events.record(report) is not None
    assert (await stack.statuses([late]))[late] == Status.DELIVERED


async def test_replaying_50_dead_letters_sends_each_once(make_stack) -> None:  # type: ignore[no-untyped-def]
    """50 messages dead-lettered by a 503 outage are replayed once each; a second replay sends nothing."""
    stack = await make_stack(
        RECONCILE_SCHEDULE="*/2 * * * * *",  # the timer records the poison queue
        SEND_RETRY=json.dumps({"baseSeconds": 0.5, "capSeconds": 1, "attempts": 1}),
    )
    stack.acs.add_fault("503", count=10_000, channel="sms")
    ids = [f"replay-{i}" for i in range(50)]
    for message_id in ids:
        await stack.svc.outbound.send(sms(message_id).decode())
    dead = frozenset({Status.DEAD_LETTERED})
    await wait_until(lambda: all_final(stack, ids, dead), 180, "all 50 to be dead-lettered")
    stack.acs.clear_faults()
    operator = OperatorService(
        stack.svc.ledger,
        stack.svc.storage.table(stack.svc.names.messages),
        stack.svc.outbound,
        stack.svc.audit,
        stack.svc.clock,
    )
    first = [await operator.replay(i, actor="ops@example.com", reason="provider outage over") for i in ids]
    assert {r.action for r in first} == {"requeued"}
    await wait_until(lambda: all_final(stack, ids, SENT_OR_LATER - dead), 60, "the replays to be sent")
    second = [await operator.replay(i, actor="ops@example.com", reason="again") for i in ids]
    assert all(r.action.startswith("skipped") for r in second)
    await asyncio.sleep(1)
    assert Counter(s.tag for s in stack.acs.sends("sms")) == Counter(ids)
    audit = await stack.svc.audit.entries()
    assert len(audit) == len(ids)
    assert {(a["Actor"], a["Reason"]) for a in audit} == {("ops@example.com", "provider outage over")}


async def test_pausing_sms_holds_it_while_email_flows_then_sends_each_once(make_stack) -> None:  # type: ignore[no-untyped-def]
    """Pause SMS during a 200-message batch: no SMS until resume, email meanwhile, then each SMS once."""
    stack = await make_stack()
    sms_ids = [f"held-sms-{i}" for i in range(100)]
    mail_ids = [f"held-mail-{i}" for i in range(100)]
    await stack.svc.control.pause("sms", actor="oncall", reason="carrier incident", now=stack.clock())
    await asyncio.sleep(1.1)  # workers re-read the switch at most once a second
    for sms_id, mail_id in zip(sms_ids, mail_ids, strict=True):
        await stack.svc.outbound.send(sms(sms_id).decode())
        await stack.svc.outbound.send(email(mail_id).decode())
    await wait_until(lambda: all_final(stack, mail_ids, SENT_OR_LATER), 60, "email to flow while SMS is paused")
    assert stack.acs.sends("sms") == []
    await stack.svc.control.resume("sms", actor="oncall", reason="carrier ok", now=stack.clock())
    await wait_until(lambda: all_final(stack, sms_ids, SENT_OR_LATER), 60, "SMS to go out after resume")
    assert Counter(s.tag for s in stack.acs.sends("sms")) == Counter(sms_ids)
    audit = [(a["Action"], a["Subject"], a["Actor"]) for a in await stack.svc.audit.entries()]
    assert audit == [("pause", "sms", "oncall"), ("resume", "sms", "oncall")]
