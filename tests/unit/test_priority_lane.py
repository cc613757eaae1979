"""The high-priority lane (issue 19): a request with `"priority": "high"` takes the same recipe and every
gate (validation, expiry, pause, consent, the sender's rate), and whenever it has to wait it waits in its
own queue, never behind the normal backlog. Over in-memory storage and a scripted provider."""

from __future__ import annotations

import asyncio
import json

import pytest

import shared.services.intake as intake_module
from shared.errors import Throttled, TransientError
from shared.ledger import canonical_payload
from shared.models import Channel, Priority, Status
from shared.runtime import Services
from shared.services.consent import ALL_SENDERS, ConsentState
from shared.services.gates import PAUSE_RECHECK_SECONDS
from shared.services.outcomes import Outcome
from shared.validation import parse_request
from tests.bodies import sms
from tests.fakes import FakeClock, MemoryStorage, ScriptedProvider, memory_services, unit_settings
from tests.unit.conftest import deliver

HIGH = {"priority": "high"}


def _lanes(storage: MemoryStorage, svc: Services) -> tuple[list[str], list[str]]:
    """The ids put back on the send queue and on the priority lane."""
    normal = storage.queue(svc.settings.send_queue).sent
    high = storage.queue(svc.settings.priority_queue).sent
    return [json.loads(q.body)["id"] for q in normal], [json.loads(q.body)["id"] for q in high]


def test_the_lane_is_named_after_the_send_queue() -> None:
    settings = unit_settings(SEND_QUEUE="sends")
    assert (settings.priority_queue, settings.priority_poison_queue) == ("sends-priority", "sends-priority-poison")
    assert set(settings.queue_names) == {"sends", "sends-poison", "sends-priority", "sends-priority-poison"}


def test_a_normal_request_is_stored_as_before_the_field_existed() -> None:
    """Normal is left out of the stored JSON: a request accepted before the field existed keeps its payload
    digest, so its redelivery after an upgrade is the same request, not an id reused."""
    normal = parse_request(sms("compat-1"))
    assert normal.priority == Priority.NORMAL
    assert "priority" not in json.loads(canonical_payload(normal, "compat-1"))
    high = parse_request(sms("compat-2", **HIGH))
    assert json.loads(canonical_payload(high, "compat-2"))["priority"] == "high"


async def test_a_high_priority_request_is_sent(svc: Services, provider: ScriptedProvider) -> None:
    assert await deliver(svc, sms("hi-1", **HIGH)) == Outcome.SENT
    row = await svc.ledger.get("hi-1")
    assert row is not None and row.status == Status.SENT
    assert [c.message_id for c in provider.calls] == ["hi-1"]


async def test_an_invalid_high_priority_request_is_rejected(svc: Services, provider: ScriptedProvider) -> None:
    assert await deliver(svc, sms("hi-bad", to="12345", **HIGH)) == Outcome.REJECTED
    row = await svc.ledger.get("hi-bad")
    assert row is not None and row.status == Status.REJECTED
    assert provider.calls == []


async def test_an_unknown_priority_is_a_field_error(svc: Services) -> None:
    result = await svc.intake.submit(sms("hi-odd", priority="urgent"))
    assert not result.accepted and [e.field for e in result.errors] == ["priority"]


async def test_an_opted_out_recipient_is_suppressed_at_high_priority(
    svc: Services, provider: ScriptedProvider, clock: FakeClock
) -> None:
    to = "+14255550112"
    await svc.consent.set_state(
        Channel.SMS, to, ALL_SENDERS, ConsentState.OPTED_OUT, reason="STOP", actor="test", now=clock()
    )
    assert await deliver(svc, sms("hi-stop", to=to, **HIGH)) == Outcome.SUPPRESSED
    assert provider.calls == []


async def test_a_paused_channel_holds_high_priority_in_its_own_lane(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider, clock: FakeClock
) -> None:
    await svc.control.pause("sms", actor="test", reason="incident", now=clock())
    assert await deliver(svc, sms("hi-paused", **HIGH)) == Outcome.RESCHEDULED
    assert _lanes(storage, svc) == ([], ["hi-paused"])
    assert storage.queue(svc.settings.priority_queue).sent[0].delay_seconds == PAUSE_RECHECK_SECONDS
    assert provider.calls == []


async def test_the_senders_rate_applies_to_both_lanes(provider: ScriptedProvider, clock: FakeClock) -> None:
    """One bucket per sender: a high-priority request is not a way around the rate; it waits in its lane."""
    storage = MemoryStorage()
    svc = await memory_services(storage, provider, clock, unit_settings(RATE_LIMITS='{"sms": 1}'))
    assert await deliver(svc, sms("rate-normal")) == Outcome.SENT
    assert await deliver(svc, sms("rate-high", **HIGH)) == Outcome.RESCHEDULED
    assert await svc.ledger.get("rate-high") is None
    assert _lanes(storage, svc) == ([], ["rate-high"])
    assert [c.message_id for c in provider.calls] == ["rate-normal"]


async def test_a_429_puts_high_priority_back_in_its_own_lane(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider
) -> None:
    provider.sends = [Throttled(30.0)]
    assert await deliver(svc, sms("hi-429", **HIGH)) == Outcome.RESCHEDULED
    assert _lanes(storage, svc) == ([], ["hi-429"])


async def test_a_backoff_puts_high_priority_back_in_its_own_lane(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider
) -> None:
    provider.sends = [TransientError("down", may_have_sent=False)]
    assert await deliver(svc, sms("hi-retry", **HIGH)) == Outcome.RESCHEDULED
    assert _lanes(storage, svc) == ([], ["hi-retry"])


async def test_the_http_intake_enqueues_each_request_in_its_lane(svc: Services, storage: MemoryStorage) -> None:
    """A normal request is enqueued at once; a high-priority one gets a lane copy that comes due only
    after the claim lease (its send is the intake's own, below)."""
    assert (await svc.intake.submit(sms("http-normal"))).accepted
    assert (await svc.intake.submit(sms("http-high", **HIGH))).accepted
    assert _lanes(storage, svc) == (["http-normal"], ["http-high"])
    normal, high = storage.queue(svc.settings.send_queue).sent, storage.queue(svc.settings.priority_queue).sent
    assert normal[0].delay_seconds == 0
    assert high[0].delay_seconds == svc.settings.acs_timeouts.claim_lease.total_seconds()


async def test_the_http_intake_sends_a_high_priority_request_itself_and_its_lane_copy_sends_nothing(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider
) -> None:
    """No wait for the lane's next poll: the POST's own invocation runs the recipe. The lane copy, due
    later in case this instance died mid-send, finds the message sent and sends nothing again."""
    assert (await svc.intake.submit(sms("now-1", **HIGH))).accepted
    row = await svc.ledger.get("now-1")
    assert row is not None and row.status == Status.SENT
    assert [c.message_id for c in provider.calls] == ["now-1"]
    [copy] = storage.queue(svc.settings.priority_queue).sent
    assert await deliver(svc, copy.body) == Outcome.DUPLICATE
    assert [c.message_id for c in provider.calls] == ["now-1"]
    again = await svc.intake.submit(sms("now-1", **HIGH))  # the producer's retry of the same POST
    assert again.accepted and not again.created
    assert [c.message_id for c in provider.calls] == ["now-1"]


async def test_the_intakes_own_send_goes_through_every_gate(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider, clock: FakeClock
) -> None:
    """Consent and pause hold for the intake's send as for the queue's: opted out is Suppressed, a paused
    channel holds it in its lane."""
    to = "+14255550113"
    await svc.consent.set_state(
        Channel.SMS, to, ALL_SENDERS, ConsentState.OPTED_OUT, reason="STOP", actor="test", now=clock()
    )
    assert (await svc.intake.submit(sms("now-stop", to=to, **HIGH))).accepted
    stopped = await svc.ledger.get("now-stop")
    assert stopped is not None and stopped.status == Status.SUPPRESSED
    await svc.control.pause("sms", actor="test", reason="incident", now=clock())
    assert (await svc.intake.submit(sms("now-paused", **HIGH))).accepted
    held = await svc.ledger.get("now-paused")
    assert held is not None and held.status == Status.ACCEPTED
    delays = sorted(q.delay_seconds for q in storage.queue(svc.settings.priority_queue).sent if "now-paused" in q.body)
    assert delays == sorted([PAUSE_RECHECK_SECONDS, svc.settings.acs_timeouts.claim_lease.total_seconds()])
    assert provider.calls == []


async def test_a_transient_failure_of_the_intakes_send_is_retried_in_the_lane(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider
) -> None:
    """ACS down at the moment of the POST: the request is accepted, backed off in its lane, sent once."""
    provider.sends = [TransientError("down", may_have_sent=False)]
    assert (await svc.intake.submit(sms("now-down", **HIGH))).accepted
    copies = [q.body for q in storage.queue(svc.settings.priority_queue).sent]
    assert len(copies) == 2  # the lane copy and the backoff's
    assert sorted([await deliver(svc, body) for body in copies]) == sorted([Outcome.SENT, Outcome.DUPLICATE])
    assert [c.message_id for c in provider.calls] == ["now-down", "now-down"]
    row = await svc.ledger.get("now-down")
    assert row is not None and row.status == Status.SENT


async def test_a_slow_send_answers_the_post_first_and_ends_sent(
    svc: Services, provider: ScriptedProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer waits for the send only so long; the send goes on after it."""
    monkeypatch.setattr(intake_module, "SEND_NOW_WAIT_SECONDS", 0.01)
    release = asyncio.Event()

    async def slow() -> None:
        await release.wait()

    provider.pause = slow
    assert (await svc.intake.submit(sms("now-slow", **HIGH))).accepted
    row = await svc.ledger.get("now-slow")
    assert row is not None and row.status in (Status.ACCEPTED, Status.SENDING)
    release.set()
    for _ in range(100):
        row = await svc.ledger.get("now-slow")
        if row is not None and row.status == Status.SENT:
            break
        await asyncio.sleep(0)
    assert row is not None and row.status == Status.SENT
