"""The send pipeline against real Azurite and the ACS emulator, through the official SDKs."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from devstack.acs import AcsEmulator
from shared.errors import ValidationFailed
from shared.models import Channel, Status
from shared.runtime import Services
from shared.services.consent import ConsentState
from shared.services.decoding import QueueDelivery
from shared.services.outcomes import Outcome
from tests.bodies import email, sms, whatsapp
from tests.integration.conftest import SMS_SENDER, Clock


def _delivery(body: bytes) -> QueueDelivery:
    return QueueDelivery(body, uuid.uuid4().hex, 1)


async def test_each_channel_is_sent_once_with_timed_transitions(svc: Services, acs: AcsEmulator) -> None:
    """SMS, email and WhatsApp each go Accepted → Sending → Sent with a time for each step."""
    for body in (sms("e2e-sms"), email("e2e-email"), whatsapp("e2e-wa")):
        assert await svc.sending.handle(_delivery(body)) == Outcome.SENT
    for message_id in ("e2e-sms", "e2e-email", "e2e-wa"):
        row = await svc.ledger.get(message_id)
        assert row is not None and row.status == Status.SENT
        assert row.get("AcceptedAt") <= row.get("SendingAt") <= row.get("SentAt")
        assert row.get("ProviderMessageId")
    assert {s.channel.value for s in acs.sends()} == {"sms", "email", "whatsapp"}
    assert len(acs.sends()) == 3


async def test_the_sms_tag_carries_our_message_id(svc: Services, acs: AcsEmulator) -> None:
    """The SMS tag is our message id, so delivery reports match without a lookup."""
    await svc.sending.handle(_delivery(sms("tagged-1")))
    assert [s.tag for s in acs.sends("sms")] == ["tagged-1"]


async def test_the_same_id_three_times_is_one_send(svc: Services, acs: AcsEmulator) -> None:
    """Queue, queue again and the HTTP intake with one id produce exactly one send."""
    body = sms("same-id")
    assert await svc.sending.handle(_delivery(body)) == Outcome.SENT
    assert await svc.sending.handle(_delivery(body)) == Outcome.DUPLICATE
    result = await svc.intake.submit(body)
    assert result.accepted and result.message_id == "same-id"
    assert len(acs.sends()) == 1


async def test_a_redelivery_after_sent_restores_a_lost_report_deadline(
    svc: Services, acs: AcsEmulator, clock: Clock
) -> None:
    """The first delivery died after recording Sent and before scheduling the SLA check (its due entry
    is gone): the queue's redelivery sends nothing and schedules the same check, so a report that
    never comes still ends the message."""
    body = sms("deadline", to="+14255550102")  # a recipient the emulator never reports on
    assert await svc.sending.handle(_delivery(body)) == Outcome.SENT
    scheduled = await svc.due.due(clock() + timedelta(days=1))
    assert [entry.message_id for entry in scheduled] == ["deadline"]
    await svc.due.remove(scheduled[0])  # what the crash lost
    assert await svc.sending.handle(_delivery(body)) == Outcome.DUPLICATE
    assert await svc.due.due(clock() + timedelta(days=1)) == scheduled  # the same entry, key and time
    assert await svc.sending.handle(_delivery(body)) == Outcome.DUPLICATE  # again: still one entry
    assert len(await svc.due.due(clock() + timedelta(days=1))) == 1
    clock.advance(days=1)
    await svc.reconcile.run()
    row = await svc.ledger.get("deadline")
    assert row is not None and row.status == Status.EXPIRED
    assert len(acs.sends()) == 1


async def test_invalid_requests_are_rejected_with_field_errors(svc: Services, acs: AcsEmulator) -> None:
    """A bad number is recorded as Rejected with its field error and nothing is sent."""
    outcome = await svc.sending.handle(_delivery(sms("bad-number", to="12345")))
    row = await svc.ledger.get("bad-number")
    assert outcome == Outcome.REJECTED
    assert row is not None and row.status == Status.REJECTED
    assert json.loads(row.get("Errors"))[0]["field"] == "to"
    assert acs.sends() == []


async def test_non_json_is_rejected_under_its_content_id(svc: Services) -> None:
    """A body that is not JSON is still recorded, under an id derived from its content."""
    outcome = await svc.sending.handle(_delivery(b"this is not json"))
    assert outcome == Outcome.REJECTED
    rows = [r async for r in svc.storage.table(svc.names.messages).query("Status eq 'Rejected'")]
    assert len(rows) == 1 and rows[0]["PartitionKey"].startswith("h-")


async def test_a_rejected_id_can_be_resubmitted_correctly(svc: Services, acs: AcsEmulator) -> None:
    """An id whose first request was invalid is free for a corrected request."""
    await svc.sending.handle(_delivery(sms("fix-me", to="nope")))
    assert await svc.sending.handle(_delivery(sms("fix-me"))) == Outcome.SENT
    assert len(acs.sends()) == 1


async def test_an_opted_out_recipient_is_suppressed(svc: Services, acs: AcsEmulator, clock: Clock) -> None:
    """After an opt-out the message is Suppressed and never reaches ACS."""
    await svc.consent.set_state(
        Channel.SMS, "+14255550111", SMS_SENDER, ConsentState.OPTED_OUT, reason="test", actor="test", now=clock()
    )
    assert await svc.sending.handle(_delivery(sms("opted-out", to="+14255550111"))) == Outcome.SUPPRESSED
    row = await svc.ledger.get("opted-out")
    assert row is not None and row.status == Status.SUPPRESSED
    assert acs.sends() == []


async def test_an_opt_out_stored_as_typed_still_suppresses_the_send(
    svc: Services, acs: AcsEmulator, clock: Clock
) -> None:
    """A number given with spaces is stored under the form sends use; one that has no such form is
    refused (a hash of it would match no send), and the caller records the refusal."""
    await svc.consent.set_state(
        Channel.SMS, "+1 425 555 0166", SMS_SENDER, ConsentState.OPTED_OUT, reason="test", actor="acs", now=clock()
    )
    with pytest.raises(ValidationFailed):
        await svc.consent.set_state(
            Channel.SMS, "not a number", SMS_SENDER, ConsentState.OPTED_OUT, reason="test", actor="acs", now=clock()
        )
    assert await svc.sending.handle(_delivery(sms("typed", to="+14255550166"))) == Outcome.SUPPRESSED
    assert acs.sends() == []


async def test_an_expired_request_is_not_sent(svc: Services, acs: AcsEmulator) -> None:
    """A request past its expiresAt ends Expired without a send."""
    body = sms("too-late", expiresAt="2020-01-01T00:00:00Z")
    assert await svc.sending.handle(_delivery(body)) == Outcome.EXPIRED
    assert acs.sends() == []


async def test_a_429_reschedules_without_a_send_or_a_burnt_attempt(svc: Services, acs: AcsEmulator) -> None:
    """Throttling gives the claim back and puts a delayed copy on the queue."""
    acs.add_fault("429", count=1, retryAfter=2, channel="sms")
    assert await svc.sending.handle(_delivery(sms("throttled"))) == Outcome.RESCHEDULED
    row = await svc.ledger.get("throttled")
    assert row is not None and row.status == Status.ACCEPTED and row.get("Throttles") == 1
    assert await svc.outbound.depth() == 1  # the delayed copy (invisible for ~2 s)
    assert acs.sends() == []


async def test_a_503_is_retried_later_and_gives_the_claim_back(svc: Services, acs: AcsEmulator) -> None:
    """A 503 was refused before ACS handled it: the claim is given back, the row remembers why, and a
    delayed copy waits on the queue (no exception, so no dequeue attempt is burnt)."""
    acs.add_fault("503", count=1, channel="sms")
    assert await svc.sending.handle(_delivery(sms("flaky"))) == Outcome.RESCHEDULED
    row = await svc.ledger.get("flaky")
    assert row is not None and row.status == Status.ACCEPTED and "503" in row.get("LastError")
    assert row.get("Retries") == 1
    assert await svc.outbound.depth() == 1
    assert acs.sends() == []


async def test_a_retry_after_a_lost_response_reuses_the_repeatability_id(svc: Services, acs: AcsEmulator) -> None:
    """A dropped connection after ACS accepted the send: the row stays Sending, and the retry is
    deduplicated by ACS."""
    acs.add_fault("drop", count=1, channel="sms", phase="after")
    assert await svc.sending.handle(_delivery(sms("lost-response"))) == Outcome.RESCHEDULED
    row = await svc.ledger.get("lost-response")
    assert row is not None and row.status == Status.SENDING
    assert await svc.sending.handle(_delivery(sms("lost-response"))) == Outcome.SENT
    assert len([s for s in acs.sends("sms") if s.tag == "lost-response"]) == 1


async def test_a_crash_beyond_the_window_becomes_unknown(svc: Services, acs: AcsEmulator, clock: Clock) -> None:
    """A Sending row older than ACS's repeatability window is not resent under at-most-once."""
    acs.add_fault("drop", count=1, channel="sms")  # the connection dies: ACS may or may not have it
    assert await svc.sending.handle(_delivery(sms("stale"))) == Outcome.RESCHEDULED
    clock.advance(minutes=6)
    assert await svc.sending.handle(_delivery(sms("stale"))) == Outcome.UNKNOWN
    assert acs.sends() == []


async def test_at_least_once_resends_beyond_the_window(svc: Services, acs: AcsEmulator, clock: Clock) -> None:
    """A request that opted into at-least-once is sent with a new repeatability id."""
    acs.add_fault("drop", count=1, channel="sms")
    body = sms("alo", delivery="at-least-once")
    assert await svc.sending.handle(_delivery(body)) == Outcome.RESCHEDULED
    clock.advance(minutes=6)
    assert await svc.sending.handle(_delivery(body)) == Outcome.SENT
    row = await svc.ledger.get("alo")
    assert row is not None and row.generation == 2


async def test_email_beyond_the_window_asks_acs_instead_of_resending(
    svc: Services, acs: AcsEmulator, clock: Clock
) -> None:
    """An email whose operation ACS knows is marked Sent without a second send."""
    acs.add_fault("drop", count=1, channel="email", phase="after")
    assert await svc.sending.handle(_delivery(email("mail-crash"))) == Outcome.RESCHEDULED
    clock.advance(minutes=6)
    assert await svc.sending.handle(_delivery(email("mail-crash"))) == Outcome.SENT
    assert len(acs.sends("email")) == 1


async def test_dead_letter_keeps_reason_and_payload(svc: Services) -> None:
    """A poisoned request is DeadLettered with the last error and its payload intact."""
    await svc.sending.steps.acceptance.accept(_checked(svc, "poisoned"), "queue")
    await svc.ledger.change("poisoned", lambda r: replace(r, last_error="provider answered 503"))
    await svc.dead_letters.record(sms("poisoned"), "q-1", "max dequeue count")
    row = await svc.ledger.get("poisoned")
    assert row is not None and row.status == Status.DEAD_LETTERED
    assert "503" in row.get("Reason") and json.loads(row.payload or "{}")["id"] == "poisoned"


async def test_undecodable_poison_is_kept_verbatim(svc: Services) -> None:
    """A payload with no usable id is stored under its queue message id."""
    await svc.dead_letters.record(b"\xff\xfe garbage", "queue-msg-7", "max dequeue count")
    raw = await svc.dead_letters.raw_entries()
    assert [r.queue_message_id for r in raw] == ["queue-msg-7"]


async def test_queue_messages_are_base64_as_the_host_expects(svc: Services) -> None:
    """What the pipeline enqueues decodes as base64 to the request JSON."""
    await svc.sending.steps.acceptance.requeue(_checked(svc, "b64"), 0)
    [message] = await svc.outbound.receive(1)
    assert json.loads(base64.b64decode(message.text))["id"] == "b64"


def _checked(svc: Services, message_id: str):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from shared.validation import check_request, parse_request

    return check_request(parse_request(sms(message_id)), svc.settings, message_id, datetime.now(UTC))


async def test_sms_carries_our_own_repeatability_id(svc: Services, acs: AcsEmulator) -> None:
    """The SMS SDK's per-call uuid is replaced by our stable id for the message's first generation."""
    from shared.ids import repeatability_id

    await svc.sending.handle(_delivery(sms("own-id")))
    assert [s.repeatability_id for s in acs.sends("sms")] == [repeatability_id("own-id", 1)]
