"""Channel fallback over in-memory storage: a message that ends in a way its request falls back on gets
its next alternative as a message of its own, once, linked both ways, whichever path ended it."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from shared.adapters.queues import RawMessage
from shared.clock import iso
from shared.errors import SendRejected, StorageUnreachable, TransientError
from shared.events_model import AcsEvent, EventKind
from shared.models import Channel, Status
from shared.runtime import Services
from shared.schema import LedgerRow
from shared.services.consent import ALL_SENDERS, ConsentState
from shared.services.due import DueKind
from shared.services.fallback import FallbackOutcome
from shared.services.outcomes import Outcome
from shared.services.reconcile import Summary
from tests.bodies import email, sms, whatsapp
from tests.fakes import FakeClock, MemoryStorage, ScriptedProvider, memory_services, unit_settings
from tests.unit.conftest import deliver

TO = "+14255550100"
SMS_TO = "+14255550177"


def _with_sms_fallback(message_id: str, **extra: Any) -> bytes:
    return whatsapp(message_id, fallback=[{"channel": "sms", "to": SMS_TO}], **extra)


async def _row(svc: Services, message_id: str) -> LedgerRow:
    row = await svc.ledger.get(message_id)
    assert row is not None, f"no ledger row for {message_id}"
    return row


async def _settled(svc: Services) -> None:
    assert svc.fallback_hook is not None
    await svc.fallback_hook.drain()


def _queued(storage: MemoryStorage, svc: Services, message_id: str) -> list[str]:
    bodies = [q.body for q in storage.queue(svc.settings.send_queue).sent]
    return [b for b in bodies if json.loads(b).get("id") == message_id]


def _report(provider_id: str, status: Status, at: str) -> AcsEvent:
    return AcsEvent(
        channel=Channel.WHATSAPP,
        kind=EventKind.REPORT,
        event_type="Microsoft.Communication.AdvancedMessageDeliveryStatusUpdated",
        provider_message_id=provider_id,
        raw_status=status.value,
        status=status,
        event_time=at,
        detail="",
    )


async def _reconcile(svc: Services, storage: MemoryStorage) -> Summary:
    """One reconcile run; the poison queues are empty (the in-memory queue cannot be received from)."""
    settings = svc.settings
    for name in (settings.poison_queue, settings.priority_poison_queue):
        storage.queue(name).receive = _nothing  # type: ignore[method-assign]
    return await svc.reconcile.run()


async def _nothing(count: int, visibility_seconds: int = 30) -> list[RawMessage]:
    return []


async def _children(svc: Services, storage: MemoryStorage) -> list[LedgerRow]:
    keys = [pk for pk, rk in storage.table(svc.names.messages).rows if rk.startswith("ledger|")]
    rows = [await svc.ledger.get(pk) for pk in sorted(keys)]
    return [r for r in rows if r is not None and r.fallback_of is not None]


# -- each trigger -----------------------------------------------------------------------------------


async def test_a_whatsapp_message_acs_refuses_is_delivered_by_sms_with_its_text(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider, clock: FakeClock
) -> None:
    """The send's own answer ends it Failed; the child takes the WhatsApp text, goes through the send
    path, and both rows link."""
    provider.sends = [SendRejected("InvalidRecipient", "not on WhatsApp")]
    assert await deliver(svc, _with_sms_fallback("wa-f1")) == Outcome.FAILED
    await _settled(svc)
    parent = await _row(svc, "wa-f1")
    assert parent.status == Status.FAILED and parent.fallback_id == "wa-f1.fb1"
    [body] = _queued(storage, svc, "wa-f1.fb1")
    child_request = json.loads(body)
    assert child_request["channel"] == "sms" and child_request["to"] == SMS_TO
    assert child_request["content"] == {"text": "wa wa-f1"}
    assert "fallback" not in child_request
    assert await deliver(svc, body) == Outcome.SENT
    child = await _row(svc, "wa-f1.fb1")
    assert child.status == Status.SENT and child.fallback_of == "wa-f1" and child.source == "fallback"
    await svc.events.apply(_report("acs-1", Status.DELIVERED, iso(clock() + timedelta(seconds=2))))
    view = await svc.views.status("wa-f1")
    assert view is not None and view["chainOutcome"] == "delivered by sms after whatsapp failed"
    assert [c.message_id for c in provider.calls] == ["wa-f1", "wa-f1.fb1"]


async def test_a_failed_report_creates_the_child(svc: Services, storage: MemoryStorage, clock: FakeClock) -> None:
    """The event projection's write is covered by the same hook."""
    assert await deliver(svc, _with_sms_fallback("wa-f2")) == Outcome.SENT
    await svc.events.apply(_report("acs-1", Status.FAILED, iso(clock() + timedelta(seconds=2))))
    await _settled(svc)
    assert (await _row(svc, "wa-f2")).fallback_id == "wa-f2.fb1"
    assert (await _row(svc, "wa-f2.fb1")).status == Status.ACCEPTED
    assert len(_queued(storage, svc, "wa-f2.fb1")) == 1


async def test_a_message_that_expires_in_reconciliation_falls_back(
    svc: Services, storage: MemoryStorage, clock: FakeClock
) -> None:
    assert await deliver(svc, _with_sms_fallback("wa-f3")) == Outcome.SENT
    clock.advance(days=2)
    summary = await _reconcile(svc, storage)
    await _settled(svc)
    assert summary.actions["expired"] == 1
    assert (await _row(svc, "wa-f3")).status == Status.EXPIRED
    assert (await _row(svc, "wa-f3.fb1")).fallback_of == "wa-f3"


async def test_a_whatsapp_refusal_falls_back_and_the_http_intake_accepts_it(
    provider: ScriptedProvider, clock: FakeClock
) -> None:
    """Free text to a user outside the 24-hour window: the intake accepts it (it falls back on refusal),
    the send path records it Rejected with the reason, and its SMS goes."""
    storage = MemoryStorage()
    svc = await memory_services(storage, provider, clock, unit_settings(WHATSAPP_SERVICE_WINDOW="enforce"))
    result = await svc.intake.submit(_with_sms_fallback("wa-f4"))
    assert result.accepted
    [body] = _queued(storage, svc, "wa-f4")
    assert await deliver(svc, body) == Outcome.REJECTED
    await _settled(svc)
    parent = await _row(svc, "wa-f4")
    assert parent.status == Status.REJECTED and parent.reason == "outside-service-window"
    [child] = _queued(storage, svc, "wa-f4.fb1")
    assert await deliver(svc, child) == Outcome.SENT
    assert [c.message_id for c in provider.calls] == ["wa-f4.fb1"]
    await svc.close()


async def test_without_a_fallback_on_refusal_the_intake_still_refuses(
    provider: ScriptedProvider, clock: FakeClock
) -> None:
    storage = MemoryStorage()
    svc = await memory_services(storage, provider, clock, unit_settings(WHATSAPP_SERVICE_WINDOW="enforce"))
    body = whatsapp("wa-f5", fallback=[{"channel": "sms", "to": SMS_TO}], fallbackOn=["failed"])
    result = await svc.intake.submit(body)
    assert not result.accepted and result.errors[0].field == "content.text"
    await svc.close()


async def test_an_opted_out_recipient_never_falls_back_by_default(
    svc: Services, storage: MemoryStorage, clock: FakeClock
) -> None:
    await svc.consent.set_state(
        Channel.WHATSAPP, TO, ALL_SENDERS, ConsentState.OPTED_OUT, reason="STOP", actor="test", now=clock()
    )
    assert await deliver(svc, _with_sms_fallback("wa-f6")) == Outcome.SUPPRESSED
    await _settled(svc)
    assert (await _row(svc, "wa-f6")).fallback_id is None
    assert await svc.ledger.get("wa-f6.fb1") is None
    assert await svc.due.due(clock() + timedelta(days=1)) == []


async def test_an_opted_out_recipient_falls_back_when_the_request_asks(
    svc: Services, storage: MemoryStorage, clock: FakeClock
) -> None:
    await svc.consent.set_state(
        Channel.WHATSAPP, TO, ALL_SENDERS, ConsentState.OPTED_OUT, reason="STOP", actor="test", now=clock()
    )
    assert await deliver(svc, _with_sms_fallback("wa-f7", fallbackOn=["opted-out"])) == Outcome.SUPPRESSED
    await _settled(svc)
    assert (await _row(svc, "wa-f7.fb1")).status == Status.ACCEPTED


@pytest.mark.parametrize(("fallback_on", "children"), [(None, 0), (["unknown"], 1)])
async def test_an_unknown_outcome_falls_back_only_when_the_request_asks(
    svc: Services, provider: ScriptedProvider, clock: FakeClock, fallback_on: list[str] | None, children: int
) -> None:
    """A send that may have reached ACS, past its 5-minute window: at most once, so Unknown."""
    provider.sends = [TransientError("gateway timeout", may_have_sent=True)]
    body = _with_sms_fallback("wa-u1", **({"fallbackOn": fallback_on} if fallback_on else {}))
    assert await deliver(svc, body) == Outcome.RESCHEDULED
    clock.advance(minutes=5)
    assert await deliver(svc, body) == Outcome.UNKNOWN
    await _settled(svc)
    assert len([r for r in [await svc.ledger.get("wa-u1.fb1")] if r is not None]) == children


async def test_no_alternative_is_created_once_the_request_has_expired(svc: Services, clock: FakeClock) -> None:
    """Expired at the gate (expiresAt passed): the child would inherit the deadline and expire in turn."""
    body = _with_sms_fallback("wa-x1", expiresAt=iso(clock() + timedelta(minutes=5)))
    clock.advance(minutes=6)
    assert await deliver(svc, body) == Outcome.EXPIRED
    await _settled(svc)
    assert await svc.ledger.get("wa-x1.fb1") is None
    assert svc.fallbacks is not None
    assert await svc.fallbacks.spawn("wa-x1") == FallbackOutcome.TOO_LATE


async def test_a_failure_not_named_in_fallback_on_ends_the_message_alone(
    svc: Services, provider: ScriptedProvider
) -> None:
    provider.sends = [SendRejected("InvalidRecipient", "no")]
    body = _with_sms_fallback("wa-f8", fallbackOn=["expired"])
    assert await deliver(svc, body) == Outcome.FAILED
    await _settled(svc)
    assert await svc.ledger.get("wa-f8.fb1") is None


async def test_a_delivered_message_creates_nothing(svc: Services, storage: MemoryStorage, clock: FakeClock) -> None:
    assert await deliver(svc, _with_sms_fallback("wa-f9")) == Outcome.SENT
    await svc.events.apply(_report("acs-1", Status.DELIVERED, iso(clock() + timedelta(seconds=2))))
    await _settled(svc)
    assert await _children(svc, storage) == []


# -- exactly once -----------------------------------------------------------------------------------


async def test_duplicate_failed_reports_create_one_child(
    svc: Services, storage: MemoryStorage, clock: FakeClock
) -> None:
    assert await deliver(svc, _with_sms_fallback("wa-d1")) == Outcome.SENT
    at = clock() + timedelta(seconds=2)
    reports = [_report("acs-1", Status.FAILED, iso(at + timedelta(seconds=i % 2))) for i in range(4)]
    await asyncio.gather(*(svc.events.apply(r) for r in reports))
    await _settled(svc)
    assert [c.message_id for c in await _children(svc, storage)] == ["wa-d1.fb1"]
    assert len(_queued(storage, svc, "wa-d1.fb1")) == 1


async def test_a_failure_reported_before_an_earlier_delivery_falls_back_once(
    svc: Services, storage: MemoryStorage, clock: FakeClock
) -> None:
    """Delivered then a Failed report of an earlier time: Delivered stands, no child. The reverse order
    (Failed first) creates the child; the later Delivered wins on the parent and creates nothing more."""
    assert await deliver(svc, _with_sms_fallback("wa-r1")) == Outcome.SENT
    t = clock()
    await svc.events.apply(_report("acs-1", Status.DELIVERED, iso(t + timedelta(seconds=3))))
    await svc.events.apply(_report("acs-1", Status.FAILED, iso(t + timedelta(seconds=2))))
    await _settled(svc)
    assert (await _row(svc, "wa-r1")).status == Status.DELIVERED
    assert await _children(svc, storage) == []
    assert await deliver(svc, _with_sms_fallback("wa-r2")) == Outcome.SENT
    await svc.events.apply(_report("acs-2", Status.FAILED, iso(t + timedelta(seconds=2))))
    await _settled(svc)
    await svc.events.apply(_report("acs-2", Status.DELIVERED, iso(t + timedelta(seconds=3))))
    await svc.events.apply(_report("acs-2", Status.FAILED, iso(t + timedelta(seconds=2))))
    await _settled(svc)
    assert (await _row(svc, "wa-r2")).status == Status.DELIVERED
    assert [c.message_id for c in await _children(svc, storage)] == ["wa-r2.fb1"]


async def test_spawning_twice_or_at_once_makes_one_child(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider
) -> None:
    provider.sends = [SendRejected("InvalidRecipient", "no")]
    assert svc.fallbacks is not None and svc.fallback_hook is not None
    svc.fallback_hook.attach(None)
    assert await deliver(svc, _with_sms_fallback("wa-s1")) == Outcome.FAILED
    outcomes = await asyncio.gather(*(svc.fallbacks.spawn("wa-s1") for _ in range(3)))
    assert sorted(outcomes) == sorted([FallbackOutcome.SPAWNED] + [FallbackOutcome.EXISTS] * 2)
    assert await svc.fallbacks.spawn("wa-s1") == FallbackOutcome.EXISTS
    assert [c.message_id for c in await _children(svc, storage)] == ["wa-s1.fb1"]


async def test_when_the_process_dies_before_the_spawn_the_sweep_creates_exactly_one_child(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider, clock: FakeClock
) -> None:
    """The intent was written before the end; nothing spawned it (the process died): the reconcile run
    a minute later creates the child, and the next run finds nothing more to do."""
    assert svc.fallback_hook is not None
    svc.fallback_hook.attach(None)
    provider.sends = [SendRejected("InvalidRecipient", "no")]
    assert await deliver(svc, _with_sms_fallback("wa-k1")) == Outcome.FAILED
    assert await svc.ledger.get("wa-k1.fb1") is None
    clock.advance(minutes=2)
    first = await _reconcile(svc, storage)
    assert first.actions[FallbackOutcome.SPAWNED.value] == 1
    assert (await _row(svc, "wa-k1")).fallback_id == "wa-k1.fb1"
    [child] = _queued(storage, svc, "wa-k1.fb1")
    assert await deliver(svc, child) == Outcome.SENT
    clock.advance(minutes=20)
    second = await _reconcile(svc, storage)
    assert FallbackOutcome.SPAWNED.value not in second.actions
    assert [c.message_id for c in await _children(svc, storage)] == ["wa-k1.fb1"]
    assert len(_queued(storage, svc, "wa-k1.fb1")) == 1


async def test_a_spawn_that_fails_in_process_is_left_to_the_sweep(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider, clock: FakeClock
) -> None:
    provider.sends = [SendRejected("InvalidRecipient", "no")]
    queue = storage.queue(svc.settings.send_queue)
    real_send = queue.send
    failures = iter([StorageUnreachable("queue down")])

    async def flaky(body: str, delay_seconds: float = 0) -> str:
        if json.loads(body).get("id") == "wa-k2.fb1" and (error := next(failures, None)):
            raise error
        return await real_send(body, delay_seconds)

    queue.send = flaky  # type: ignore[method-assign]
    assert await deliver(svc, _with_sms_fallback("wa-k2")) == Outcome.FAILED
    await _settled(svc)
    assert (await _row(svc, "wa-k2")).fallback_id is None
    clock.advance(minutes=2)
    summary = await _reconcile(svc, storage)
    assert summary.actions[FallbackOutcome.EXISTS.value] == 1  # accepted before the queue failed
    assert (await _row(svc, "wa-k2")).fallback_id == "wa-k2.fb1"
    assert len(_queued(storage, svc, "wa-k2.fb1")) == 1


async def test_a_chain_goes_on_until_an_alternative_is_delivered(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider
) -> None:
    """WhatsApp fails, the SMS fails, the email goes: three messages, each linked to the one before."""
    email = {"channel": "email", "to": "ann@example.com", "content": {"subject": "Code", "text": "your code"}}
    body = whatsapp("wa-c1", fallback=[{"channel": "sms", "to": SMS_TO}, email])
    provider.sends = [SendRejected("InvalidRecipient", "no"), SendRejected("InvalidRecipient", "no")]
    assert await deliver(svc, body) == Outcome.FAILED
    await _settled(svc)
    [sms_body] = _queued(storage, svc, "wa-c1.fb1")
    assert json.loads(sms_body)["fallback"] == [email]
    assert await deliver(svc, sms_body) == Outcome.FAILED
    await _settled(svc)
    [email_body] = _queued(storage, svc, "wa-c1.fb2")
    assert await deliver(svc, email_body) == Outcome.SENT
    assert (await _row(svc, "wa-c1.fb2")).fallback_of == "wa-c1.fb1"
    assert (await _row(svc, "wa-c1.fb1")).fallback_id == "wa-c1.fb2"
    view = await svc.views.status("wa-c1.fb1")
    assert view is not None
    assert (view["fallbackOf"], view["fallback"]) == ("wa-c1", "wa-c1.fb2")
    assert [(m["id"], m["status"]) for m in view["chain"]] == [
        ("wa-c1", "Failed"),
        ("wa-c1.fb1", "Failed"),
        ("wa-c1.fb2", "Sent"),
    ]
    assert view["chainOutcome"] == "sent by email after whatsapp failed, then sms failed"
    history = await svc.views.history("wa-c1.fb2")
    assert history is not None and history["chainOutcome"] == view["chainOutcome"]
    # One time-ordered story: each message's own transitions, each entry naming its message.
    told = [(t["message"], t["channel"], t["status"]) for t in history["transitions"]]
    assert [entry for entry in told if entry[2] in ("Failed", "Sent")] == [
        ("wa-c1", "whatsapp", "Failed"),
        ("wa-c1.fb1", "sms", "Failed"),
        ("wa-c1.fb2", "email", "Sent"),
    ]
    assert [str(t["at"]) for t in history["transitions"]] == sorted(str(t["at"]) for t in history["transitions"])
    alone = await svc.views.history("wa-c9")
    assert alone is None


async def test_a_request_kept_in_a_blob_falls_back_with_its_text(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider
) -> None:
    """An email too large for a queue message (claim-check): the spawn reads the request from its blob."""
    attachment = {"name": "a.pdf", "contentType": "application/pdf", "contentInBase64": "QUFB" * 20_000}
    content = {"subject": "Invoice", "text": "your invoice is attached", "attachments": [attachment]}
    body = email("em-b1", content=content, fallback=[{"channel": "sms", "to": SMS_TO}])
    assert (await svc.intake.submit(body)).accepted
    assert (await _row(svc, "em-b1")).payload_ref is not None
    provider.sends = [SendRejected("InvalidRecipient", "no mailbox")]
    [queued] = _queued(storage, svc, "em-b1")
    assert await deliver(svc, queued) == Outcome.FAILED
    await _settled(svc)
    [child] = _queued(storage, svc, "em-b1.fb1")
    assert json.loads(child)["content"] == {"text": "your invoice is attached"}


async def test_a_child_that_became_invalid_is_recorded_rejected_with_its_errors(
    provider: ScriptedProvider, clock: FakeClock
) -> None:
    """Sent while its SMS alternative's sender was configured; the sender was removed before it failed."""
    storage = MemoryStorage()
    svc = await memory_services(storage, provider, clock, unit_settings(SMS_SENDERS="+18005550100,+18005550199"))
    body = whatsapp("wa-i1", fallback=[{"channel": "sms", "to": SMS_TO, "from": "+18005550199"}])
    assert await deliver(svc, body) == Outcome.SENT
    await svc.close()
    svc = await memory_services(storage, provider, clock)
    await svc.events.apply(_report("acs-1", Status.FAILED, iso(clock() + timedelta(seconds=2))))
    await _settled(svc)
    child = await _row(svc, "wa-i1.fb1")
    assert child.status == Status.REJECTED and child.fallback_of == "wa-i1"
    assert child.errors is not None and json.loads(child.errors)[0]["field"] == "from"
    assert (await _row(svc, "wa-i1")).fallback_id == "wa-i1.fb1"
    await svc.close()


# -- the contract -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fallback", "field"),
    [
        ([{"channel": "email", "to": "ann@example.com"}], "fallback.0.content"),
        ([{"channel": "sms", "to": "425"}], "fallback.0.to"),
        ([{"channel": "sms", "to": SMS_TO}, {"channel": "sms", "to": "x"}], "fallback.1.to"),
        ([{"channel": "sms", "to": SMS_TO, "from": "+19995550000"}], "fallback.0.from"),
    ],
)
async def test_the_intake_checks_each_alternative_as_the_request_it_becomes(
    svc: Services, fallback: list[dict[str, Any]], field: str
) -> None:
    result = await svc.intake.submit(whatsapp("wa-v1", fallback=fallback))
    assert not result.accepted
    assert [e.field for e in result.errors] == [field]


async def test_a_template_message_needs_the_text_of_its_sms_alternative(svc: Services) -> None:
    template = {"template": {"name": "otp", "language": "en"}}
    body = whatsapp("wa-v2", content=template, fallback=[{"channel": "sms", "to": SMS_TO}])
    assert [e.field for e in (await svc.intake.submit(body)).errors] == ["fallback.0.content"]
    with_text = [{"channel": "sms", "to": SMS_TO, "content": {"text": "your code is 1234"}}]
    assert (await svc.intake.submit(whatsapp("wa-v3", content=template, fallback=with_text))).accepted


async def test_a_request_without_fallback_writes_no_fallback_column_and_no_intent(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider, clock: FakeClock
) -> None:
    provider.sends = [SendRejected("InvalidRecipient", "no")]
    assert await deliver(svc, sms("plain-1")) == Outcome.FAILED
    assert "FallbackOn" not in (await _row(svc, "plain-1")).to_entity()
    assert [e for e in await svc.due.due(clock() + timedelta(days=1)) if e.kind == DueKind.FALLBACK] == []


async def test_the_reconcile_summary_counts_each_closed_chain_once_with_its_fees(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider, clock: FakeClock
) -> None:
    """Per message and per chain: the WhatsApp parent that failed and its delivered SMS are two messages
    and one chain `whatsapp>sms|Delivered`, whose fees are both messages' (the report's chain table)."""
    prices = svc.settings.prices
    assert await deliver(svc, _with_sms_fallback("wa-r1")) == Outcome.SENT
    await svc.events.apply(_report("acs-1", Status.FAILED, iso(clock() + timedelta(seconds=1))))
    await _settled(svc)
    [child_body] = _queued(storage, svc, "wa-r1.fb1")
    assert await deliver(svc, child_body) == Outcome.SENT
    delivered = _report("acs-2", Status.DELIVERED, iso(clock() + timedelta(seconds=2)))
    sms_type = "Microsoft.Communication.SMSDeliveryReportReceived"
    await svc.events.apply(replace(delivered, channel=Channel.SMS, event_type=sms_type))
    assert (await _row(svc, "wa-r1.fb1")).status == Status.DELIVERED
    clock.advance(days=2)  # both SLA deadlines have passed
    summary = await _reconcile(svc, storage)
    row = summary.row()
    assert dict(summary.cohort) == {"whatsapp|Failed": 1, "sms|Delivered": 1}
    assert row.chains == {"whatsapp>sms|Delivered": 1}
    wa_fee, sms_fee = prices[Channel.WHATSAPP], prices[Channel.SMS]
    assert row.costs == pytest.approx({"whatsapp|Failed": wa_fee, "sms|Delivered": sms_fee})
    assert row.chain_costs == pytest.approx({"whatsapp>sms|Delivered": wa_fee + sms_fee})
