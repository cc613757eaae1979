"""ACS events as Microsoft publishes them, and as they go wrong: addresses in every documented form,
fields of the wrong type, characters table keys forbid, inbound messages without an id."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from devstack.acs import DEFAULT_TOPIC
from shared.models import Channel
from shared.runtime import Services
from shared.services.decoding import QueueDelivery
from shared.services.events import EventOutcome
from shared.services.outcomes import Outcome
from shared.services.rejections import REJECTED_PARTITION
from tests.bodies import sms
from tests.integration.conftest import SMS_SENDER

T0 = "2020-09-18T00:27:45.32Z"


def sms_received(sender: str, to: str, text: str, message_id: str | None = None) -> dict[str, Any]:
    """Microsoft's published SMSReceived sample (azure-rest-api-specs, event-grid-schema/sms_received.json):
    PascalCase data keys, numbers without "+"."""
    return {
        "id": message_id or f"Incoming_{uuid.uuid4().hex}",
        "topic": DEFAULT_TOPIC,
        "subject": f"/phonenumber/{to}",
        "data": {
            "MessageId": message_id or f"Incoming_{uuid.uuid4().hex}",
            "From": sender,
            "To": to,
            "Message": text,
            "ReceivedTimestamp": T0,
            "SegmentCount": 1,
        },
        "eventType": "Microsoft.Communication.SMSReceived",
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": "2020-09-18T00:27:47Z",
    }


def whatsapp_received(**data: Any) -> dict[str, Any]:
    """Microsoft's published AdvancedMessageReceived sample (event-grid-schema/advanced_message_received.json):
    no messageId, numbers without "+"."""
    return {
        "id": "4611364c-08fb-4a8a-a8b5-7e40203285d3",
        "topic": DEFAULT_TOPIC,
        "subject": "advancedMessage/sender/18334411877/recipient/be57b49d-5cd4-4f96-9a6b-4af41bc9fdfb",
        "data": {
            "content": "Come on guys, lets go for lunch together.",
            "channelType": "whatsapp",
            "messageType": "text",
            "from": "12375679879",
            "to": "be57b49d-5cd4-4f96-9a6b-4af41bc9fdfb",
            "receivedTimestamp": "2024-03-22T17:06:11.2610383+00:00",
            **data,
        },
        "eventType": "Microsoft.Communication.AdvancedMessageReceived",
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": "2024-02-23T23:55:39.1900577Z",
    }


async def _rejected(svc: Services) -> list[dict[str, Any]]:
    table = svc.storage.table(svc.names.rejected_events)
    return [r async for r in table.query("PartitionKey eq @pk", {"pk": REJECTED_PARTITION})]


def _d(body: bytes) -> QueueDelivery:
    return QueueDelivery(body, uuid.uuid4().hex, 1)


@pytest.mark.parametrize("sender", ["14255550188", "+14255550188", " 14255550188 ", "+1 425 555 0188"])
@pytest.mark.parametrize("our_number", ["18005550100", "+18005550100", "+1800/5550100"])
@pytest.mark.parametrize("keyword", ["STOP", "stopall"])
async def test_an_opt_out_in_any_documented_number_form_blocks_the_next_send(
    svc: Services, sender: str, our_number: str, keyword: str
) -> None:
    """STOP or STOPALL from a number written without "+" (as in ACS's published sample), or to our
    number written so, is stored under the hash sends look up: the next send is suppressed."""
    assert await svc.events.record(sms_received(sender, our_number, keyword)) == EventOutcome.INBOUND
    decision = await svc.consent.check(Channel.SMS, "+14255550188", SMS_SENDER)
    assert not decision.allowed
    assert await svc.sending.handle(_d(sms(f"after-{uuid.uuid4().hex[:8]}", to="+14255550188"))) == Outcome.SUPPRESSED


@pytest.mark.parametrize("sender", ["not-a-number", "+1", "{sender@id}", "1" * 30])
async def test_an_inbound_from_an_address_no_send_could_use_is_refused_visibly(svc: Services, sender: str) -> None:
    """An address that cannot be put in the form sends use is recorded as rejected, never stored
    under a hash nothing matches."""
    assert await svc.events.record(sms_received(sender, "18005550100", "STOP")) == EventOutcome.REJECTED
    rejected = await _rejected(svc)
    assert len(rejected) == 1 and "data.from" in rejected[0]["Reason"]
    consent = svc.storage.table(svc.names.consent)
    assert [r async for r in consent.query("PartitionKey ne ''")] == []


async def test_a_whatsapp_message_without_a_message_id_is_recorded_once(svc: Services) -> None:
    """Microsoft's published AdvancedMessageReceived sample has no messageId: it is recorded under a
    derived id, and its redelivery (in either casing) is a duplicate, not a second row."""
    event = whatsapp_received()
    assert await svc.events.record(event) == EventOutcome.INBOUND
    assert await svc.events.record(copy.deepcopy(event)) == EventOutcome.DUPLICATE
    inbound = svc.storage.table(svc.names.inbound)
    rows = [r async for r in inbound.query("PartitionKey ne ''") if not r["PartitionKey"].startswith("window|")]
    assert len(rows) == 1
    assert rows[0]["ProviderMessageId"].startswith("derived-")


async def test_two_different_whatsapp_messages_without_ids_are_two_rows(svc: Services) -> None:
    assert await svc.events.record(whatsapp_received(content="one")) == EventOutcome.INBOUND
    assert await svc.events.record(whatsapp_received(content="two")) == EventOutcome.INBOUND
    inbound = svc.storage.table(svc.names.inbound)
    messages = [r async for r in inbound.query("PartitionKey ne ''") if not r["PartitionKey"].startswith("window|")]
    assert len(messages) == 2


def _sms_report(**data: Any) -> dict[str, Any]:
    return {
        "id": "Outgoing_202009180022138813a09b-0cbf-4304-9b03-1546683bb910",
        "topic": DEFAULT_TOPIC,
        "subject": "/phonenumber/15555555555",
        "data": {
            "messageId": "Outgoing_202009180022138813a09b-0cbf-4304-9b03-1546683bb910",
            "from": "15555555555",
            "to": "+15555555555",
            "deliveryStatus": "Delivered",
            "deliveryStatusDetails": "No error.",
            "receivedTimestamp": "2020-09-18T00:22:20.2855749Z",
            "deliveryAttempts": [
                {"timestamp": "2020-09-18T00:22:14.9315918Z", "segmentsSucceeded": 1, "segmentsFailed": 0}
            ],
            **data,
        },
        "eventType": "Microsoft.Communication.SMSDeliveryReportReceived",
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": "2020-09-18T00:22:20Z",
    }


BAD_FIELDS = {
    "segments-x": {"deliveryAttempts": [{"timestamp": T0, "segmentsSucceeded": 1, "segmentsFailed": "x"}]},
    "attempts-string": {"deliveryAttempts": "none"},
    "status-number": {"deliveryStatus": 3},
    "id-slash": {"messageId": "Outgoing_1/2"},
    "id-backslash": {"messageId": "Outgoing_1\\2"},
    "id-hash": {"messageId": "Outgoing_1#2"},
    "id-question": {"messageId": "Outgoing_1?2"},
    "id-nul": {"messageId": "Outgoing_1\x002"},
    "id-c1": {"messageId": "Outgoing_1\x852"},
    "id-del": {"messageId": "Outgoing_1\x7f2"},
    "id-long": {"messageId": "O" * 2000},
    "id-number": {"messageId": 12},
    "time-year-1": {"receivedTimestamp": "0001-01-01T00:00:00+05:00"},
    "details-list": {"deliveryStatusDetails": ["x"]},
}


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
async def test_a_malformed_sms_report_is_rejected_once_and_acknowledged(svc: Services, case: str) -> None:
    """Wrong types and key-forbidden characters are recorded as rejected, with the payload, once for
    any number of deliveries; record() never raises for them (Event Grid would retry for 24 h)."""
    event = _sms_report(**BAD_FIELDS[case])
    for _ in range(3):
        assert await svc.events.record(copy.deepcopy(event)) == EventOutcome.REJECTED
    rejected = await _rejected(svc)
    assert len(rejected) == 1
    assert "Outgoing_" in rejected[0]["Payload0"] or "O" * 100 in rejected[0]["Payload0"]


@pytest.mark.parametrize("tag", [12, {"id": "x"}, ["x"], "their/tag", True])
async def test_a_report_whose_tag_is_not_one_of_ours_is_still_recorded(svc: Services, tag: Any) -> None:
    """A tag of another type or with key-forbidden characters is not ours: the report is matched (or
    parked) by its provider id instead of raising."""
    assert await svc.events.record(_sms_report(tag=tag)) == EventOutcome.ORPHANED


async def test_whatsapp_error_as_a_string_is_recorded(svc: Services) -> None:
    event = {
        "id": "48cd6446-01dd-479f-939c-171c86c46700",
        "topic": DEFAULT_TOPIC,
        "subject": "advancedMessage/x/status/Failed",
        "data": {"messageId": "wa-unknown-1", "status": "Failed", "channelType": "whatsapp", "error": "131026"},
        "eventType": "Microsoft.Communication.AdvancedMessageDeliveryStatusUpdated",
        "eventTime": "2023-07-06T18:42:28.8454662Z",
    }
    assert await svc.events.record(event) == EventOutcome.ORPHANED


async def test_deeply_nested_data_is_rejected_not_raised(svc: Services) -> None:
    nested: Any = "x"
    for _ in range(5000):
        nested = {"a": nested}
    event = _sms_report(deliveryStatus=nested)
    assert await svc.events.record(event) == EventOutcome.REJECTED
    assert await svc.events.record(event) == EventOutcome.REJECTED
    assert len(await _rejected(svc)) == 1


async def test_a_malformed_event_from_a_foreign_topic_writes_nothing(svc: Services) -> None:
    """The topic allowlist is checked before anything is parsed: a foreign malformed event is ignored."""
    event = _sms_report(messageId="a/b")
    del event["data"]  # today's parser would reject it, and write a row, before looking at the topic
    event["topic"] = "/subscriptions/evil/resourceGroups/x/providers/Microsoft.Communication/communicationServices/y"
    assert await svc.events.record(event) == EventOutcome.IGNORED
    assert await _rejected(svc) == []


async def _sent_sms(svc: Services, message_id: str) -> str:
    assert await svc.sending.handle(_d(sms(message_id))) == Outcome.SENT
    row = await svc.ledger.get(message_id)
    assert row is not None
    return str(row.get("ProviderMessageId"))


@pytest.mark.parametrize("tag", [None, "someone-elses-id", 42, "their/tag"])
async def test_an_sms_report_without_our_tag_matches_by_its_provider_id(svc: Services, tag: Any) -> None:
    """A report that lacks the tag, or carries a foreign one, is matched by the provider message id the
    ledger holds, on a fresh instance too (no in-memory hint): the message is Delivered, not orphaned."""
    message_id = f"untagged-{uuid.uuid4().hex[:8]}"
    provider_id = await _sent_sms(svc, message_id)
    fresh = await _fresh_events(svc)
    event = _sms_report(messageId=provider_id, **({} if tag is None else {"tag": tag}))
    assert await fresh.record(event) == EventOutcome.RECORDED
    row = await svc.ledger.get(message_id)
    assert row is not None and row.status.value == "Delivered"


async def test_an_untagged_sms_report_that_beat_its_send_is_rematched_when_the_send_learns_its_id(
    svc: Services,
) -> None:
    """The report arrives before ACS's answer reaches the sender: it is parked, and the sender's index
    write meets its placeholder and re-matches it at once."""
    message_id = f"early-{uuid.uuid4().hex[:8]}"
    provider_id = await _sent_sms(svc, message_id)
    index = svc.storage.table(svc.names.provider_ids)
    await index.delete(provider_id, provider_id)  # as if the send had not indexed it yet
    fresh = await _fresh_events(svc)
    assert await fresh.record(_sms_report(messageId=provider_id)) == EventOutcome.ORPHANED
    # The send's own index step, as _mark_sent runs it: it finds the placeholder, so it re-matches.
    indexed = await svc.events.correlation.index(provider_id, message_id, Channel.SMS)
    assert indexed.met_placeholder
    assert await svc.events.rematch(provider_id) == 1
    row = await svc.ledger.get(message_id)
    assert row is not None and row.status.value == "Delivered"


def _checked_sms(svc: Services, message_id: str):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from shared.validation import check_request, parse_request

    return check_request(parse_request(sms(message_id)), svc.settings, message_id, datetime.now(UTC))


async def _fresh_events(svc: Services):  # type: ignore[no-untyped-def]
    """Another instance's EventService: same tables, no in-memory hints."""
    from shared.clock import utc_now
    from shared.ledger import Ledger
    from shared.runtime import event_service

    ledger = Ledger(svc.storage.table(svc.names.messages), svc.settings.consent_hash_key)
    return event_service(svc.settings, svc.storage, svc.names, ledger, svc.consent, utc_now)
