"""Channel fallback through the local Functions runner and the ACS emulator: a WhatsApp failure delivered
by SMS, a refused template, an expiry found by reconciliation, and runner kills between ends and spawns."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from typing import Any

from shared.models import Channel, Status
from shared.services.acceptance import STUCK_AFTER
from shared.services.fallback import SPAWN_RECHECK
from tests.e2e.conftest import Stack, all_final, wait_until
from tests.integration.conftest import SMS_SENDER

FAILS_ON_WHATSAPP = "+14255550101"  # the emulator reports Failed (numbers ending 01)
SILENT_ON_WHATSAPP = "+14255550102"  # the emulator never reports (ending 02)
SMS_TO = "+14255550177"  # delivered
REPEATS_FAILED = "+14255550118"  # Failed 3 times over, then a late copy or the earlier Sent status


def _request(message_id: str, to: str, **extra: Any) -> dict[str, Any]:
    body = {"id": message_id, "channel": "whatsapp", "to": to, "content": {"text": f"code for {message_id}"}}
    return body | {"fallback": [{"channel": "sms", "to": SMS_TO}]} | extra


async def _status(stack: Stack, message_id: str) -> Status | None:
    return (await stack.statuses([message_id]))[message_id]


def _sms_sends(stack: Stack) -> Counter[str | None]:
    return Counter(s.tag for s in stack.acs.sends("sms"))


async def _delivered(stack: Stack, message_id: str) -> bool:
    return await _status(stack, message_id) == Status.DELIVERED


async def test_a_whatsapp_failure_is_delivered_by_sms(make_stack) -> None:  # type: ignore[no-untyped-def]
    """POSTed, sent on WhatsApp, reported Failed: the runner creates the SMS, which is delivered; the
    status API shows the chain and its outcome."""
    stack: Stack = await make_stack()
    code, _ = stack.http("POST", "/api/messages", _request("fb-e2e-1", FAILS_ON_WHATSAPP))
    assert code == 202
    await wait_until(lambda: _delivered(stack, "fb-e2e-1.fb1"), 60, "the SMS to be delivered")
    assert await _status(stack, "fb-e2e-1") == Status.FAILED
    code, view = stack.http("GET", "/api/messages/fb-e2e-1")
    assert code == 200 and view["fallback"] == "fb-e2e-1.fb1"
    assert view["chainOutcome"] == "delivered by sms after whatsapp failed"
    assert _sms_sends(stack) == Counter({"fb-e2e-1.fb1": 1})
    assert len(stack.acs.sends("whatsapp")) == 1 and stack.acs.duplicates() == []


async def test_an_unapproved_template_falls_back_to_sms(make_stack) -> None:  # type: ignore[no-untyped-def]
    """A paused template: the intake accepts it (it falls back on refusal), the send path refuses it
    without sending, and the SMS alternative (with its own text) is delivered."""
    stack: Stack = await make_stack()
    template = {"template": {"name": "spring_sale", "language": "en_US", "values": {"1": "20%"}, "bodyBindings": ["1"]}}
    fallback = [{"channel": "sms", "to": SMS_TO, "content": {"text": "Spring sale: 20% off."}}]
    body = _request("fb-e2e-2", "+14255550100", content=template, fallback=fallback)
    code, _ = stack.http("POST", "/api/messages", body)
    assert code == 202
    await wait_until(lambda: _delivered(stack, "fb-e2e-2.fb1"), 60, "the SMS to be delivered")
    parent = await stack.svc.ledger.get("fb-e2e-2")
    assert parent is not None and (parent.status, parent.reason) == (Status.REJECTED, "template-not-approved")
    assert stack.acs.sends("whatsapp") == []


async def test_a_message_expired_by_reconciliation_falls_back(make_stack) -> None:  # type: ignore[no-untyped-def]
    """No report within the WhatsApp SLA: the reconcile run ends it Expired and creates the SMS, which the
    runner delivers."""
    stack: Stack = await make_stack()
    stack.http("POST", "/api/messages", _request("fb-e2e-3", SILENT_ON_WHATSAPP))
    await wait_until(lambda: _sent(stack, "fb-e2e-3"), 60, "the WhatsApp send")
    stack.clock.advance(minutes=61)
    summary = await stack.svc.reconcile.run()
    assert summary.actions["expired"] == 1
    assert stack.svc.fallback_hook is not None
    await stack.svc.fallback_hook.drain()
    await wait_until(lambda: _delivered(stack, "fb-e2e-3.fb1"), 60, "the SMS to be delivered")
    assert await _status(stack, "fb-e2e-3") == Status.EXPIRED
    assert _sms_sends(stack) == Counter({"fb-e2e-3.fb1": 1})


async def test_duplicated_and_reordered_failed_reports_make_one_child_each(make_stack) -> None:  # type: ignore[no-untyped-def]
    """WhatsApp and SMS parents whose Failed report comes three times over and then out of order (a
    fresh-id Failed with an earlier time, or the Sent status that preceded it): one alternative each,
    each sent once, and no parent's end overturned by the late event."""
    stack: Stack = await make_stack()
    whatsapp_ids = [f"fb-dup-wa-{i}" for i in range(6)]
    sms_ids = [f"fb-dup-sms-{i}" for i in range(6)]
    for message_id in whatsapp_ids:
        assert (await stack.svc.intake.submit(_bytes(_request(message_id, REPEATS_FAILED)))).accepted
    for message_id in sms_ids:  # the emulator tells duplicates by content: each message says its own
        email = {"channel": "email", "to": "fb@example.com", "content": {"subject": "Code", "text": message_id}}
        body = {"id": message_id, "channel": "sms", "to": REPEATS_FAILED, "content": {"text": f"code {message_id}"}}
        assert (await stack.svc.intake.submit(_bytes(body | {"fallback": [email]}))).accepted
    children = [f"{i}.fb1" for i in whatsapp_ids + sms_ids]
    await wait_until(lambda: all_final(stack, children, frozenset({Status.DELIVERED})), 90, "every alternative")
    assert set((await stack.statuses(whatsapp_ids + sms_ids)).values()) == {Status.FAILED}
    assert await stack.statuses([f"{i}.fb2" for i in whatsapp_ids + sms_ids]) == {
        f"{i}.fb2": None for i in whatsapp_ids + sms_ids
    }
    assert _sms_sends(stack) == Counter({**{f"{i}.fb1": 1 for i in whatsapp_ids}, **dict.fromkeys(sms_ids, 1)})
    assert len(stack.acs.sends("email")) == len(sms_ids)
    assert stack.acs.duplicates() == []


async def test_an_opted_out_recipient_gets_no_alternative_unless_the_request_says_so(make_stack) -> None:  # type: ignore[no-untyped-def]
    """The recipient texts STOP (recorded by the runner from the emulator's event): an SMS to them ends
    Suppressed with no alternative by default; one whose request falls back on opted-out gets its email."""
    stack: Stack = await make_stack()
    stopped = "+14255550166"
    stack.acs.inbound(stopped, SMS_SENDER, "STOP")

    async def opted_out() -> bool:
        decision = await stack.svc.consent.check(Channel.SMS, stopped, SMS_SENDER)
        return not decision.allowed

    await wait_until(opted_out, 30, "the STOP to be recorded")
    code, _ = stack.http("POST", "/api/messages", _sms_with_email("fb-stop-probe", stopped))
    assert code == 202
    await wait_until(lambda: _ended(stack, "fb-stop-probe"), 30, "the first request to end")
    assert await _status(stack, "fb-stop-probe") == Status.SUPPRESSED
    body = _sms_with_email("fb-stop-2", stopped) | {"fallbackOn": ["opted-out"]}
    code, _ = stack.http("POST", "/api/messages", body)
    assert code == 202
    await wait_until(lambda: _delivered(stack, "fb-stop-2.fb1"), 60, "the email alternative")
    assert await _status(stack, "fb-stop-2") == Status.SUPPRESSED
    # Checked last, when the second request's alternative exists: the default triggers never make one.
    assert await _status(stack, "fb-stop-probe.fb1") is None
    assert [s for s in stack.acs.sends("sms") if s.tag in ("fb-stop-probe", "fb-stop-2")] == []


def _sms_with_email(message_id: str, to: str) -> dict[str, Any]:
    email = {"channel": "email", "to": "stop@example.com", "content": {"subject": "Code", "text": message_id}}
    body = {"id": message_id, "channel": "sms", "to": to, "content": {"text": f"code {message_id}"}}
    return body | {"fallback": [email]}


async def _ended(stack: Stack, message_id: str) -> bool:
    return await _status(stack, message_id) not in (None, Status.ACCEPTED, Status.SENDING)


async def _sent(stack: Stack, message_id: str) -> bool:
    return await _status(stack, message_id) == Status.SENT


async def test_runner_kills_between_ends_and_spawns_leave_exactly_one_child_each(
    make_stack,
) -> None:  # type: ignore[no-untyped-def]
    """30 WhatsApp messages reported Failed, the runner SIGKILLed three times while sends, ends and spawns
    are under way; the reconcile sweep a minute on creates what the killed workers did not: one SMS per
    parent, each sent once, nothing sent twice."""
    stack: Stack = await make_stack(report_delay=0.3)
    assert stack.svc.fallback_hook is not None
    stack.svc.fallback_hook.attach(None)  # this process spawns only through the sweep
    ids = [f"fb-kill-{i}" for i in range(30)]
    for message_id in ids:
        assert (await stack.svc.intake.submit(_bytes(_request(message_id, FAILS_ON_WHATSAPP)))).accepted
    rng = random.Random(18)
    for _ in range(3):
        await asyncio.sleep(rng.uniform(0.5, 2.0))
        assert stack.runner is not None
        stack.runner.kill()
        stack.start_runner()

    async def settled() -> bool:
        stack.clock.advance(seconds=SPAWN_RECHECK.total_seconds() + STUCK_AFTER.total_seconds())
        await stack.svc.reconcile.run()
        children = await stack.statuses([f"{i}.fb1" for i in ids])
        return all(s == Status.DELIVERED for s in children.values())

    await wait_until(settled, 180, "every parent's SMS to be delivered")
    assert set((await stack.statuses(ids)).values()) == {Status.FAILED}
    assert await stack.statuses([f"{i}.fb2" for i in ids]) == {f"{i}.fb2": None for i in ids}
    assert _sms_sends(stack) == Counter({f"{i}.fb1": 1 for i in ids})
    assert stack.acs.duplicates() == []
    assert len({s.repeatability_id for s in stack.acs.sends("whatsapp")}) == len(ids)


def _bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
