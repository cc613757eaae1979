"""Recording ACS events: every shape, duplicates, order, orphans, consent, trust boundary."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest

from devstack.acs import DEFAULT_TOPIC, AcsEmulator
from shared.adapters.acs import ProviderReceipt, SendIds
from shared.adapters.tables import Stored, TableStore
from shared.clock import iso, utc_now
from shared.errors import Conflict
from shared.events_model import envelope_from_dict, normalise
from shared.models import Status
from shared.runtime import Services
from shared.schema import is_ledger_row, ledger_row_key
from shared.services.decoding import QueueDelivery
from shared.services.events import EventOutcome
from shared.services.outcomes import Outcome
from shared.validation import CheckedRequest
from tests.bodies import email, sms, whatsapp
from tests.integration.conftest import SMS_SENDER, Clock, eventually

T0 = "2026-11-28T10:00:00.1234567Z"


def _d(body: bytes) -> QueueDelivery:
    return QueueDelivery(body, uuid.uuid4().hex, 1)


def sms_report(message_id: str, tag: str | None, status: str = "Delivered", when: str = T0) -> dict[str, Any]:
    data: dict[str, Any] = {
        "messageId": message_id,
        "from": "18005550100",
        "to": "+14255550100",
        "deliveryStatus": status,
        "deliveryStatusDetails": "No error.",
        "receivedTimestamp": when,
        "deliveryAttempts": [{"timestamp": when, "segmentsSucceeded": 1, "segmentsFailed": 0}],
    }
    if tag:
        data["tag"] = tag
    return {
        "id": message_id,
        "topic": DEFAULT_TOPIC,
        "subject": "/phonenumber/18005550100",
        "data": data,
        "eventType": "Microsoft.Communication.SMSDeliveryReportReceived",
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "eventTime": when,
    }


def pascal(event: dict[str, Any]) -> dict[str, Any]:
    """The same event with PascalCase data keys, as in the spec samples."""
    out = copy.deepcopy(event)

    def up(value: Any) -> Any:
        if isinstance(value, dict):
            return {k[0].upper() + k[1:]: up(v) for k, v in value.items()}
        if isinstance(value, list):
            return [up(v) for v in value]
        return value

    out["data"] = up(out["data"])
    return out


def cloud(event: dict[str, Any], spec_key: str = "specversion") -> dict[str, Any]:
    """The same event in the CloudEvents schema."""
    return {
        spec_key: "1.0",
        "id": event["id"],
        "source": event["topic"],
        "subject": event["subject"],
        "type": event["eventType"],
        "time": event["eventTime"],
        "data": event["data"],
    }


async def _sent(svc: Services, body: bytes, message_id: str) -> str:
    assert await svc.sending.handle(_d(body)) == Outcome.SENT
    row = await svc.ledger.get(message_id)
    assert row is not None
    return str(row.get("ProviderMessageId"))


async def _status(svc: Services, message_id: str) -> Status:
    row = await svc.ledger.get(message_id)
    assert row is not None
    return row.status


async def _event_rows(svc: Services, message_id: str) -> list[dict[str, Any]]:
    table = svc.storage.table(svc.names.messages)
    return [r async for r in table.query("PartitionKey eq @pk", {"pk": message_id}) if not is_ledger_row(r["RowKey"])]


@pytest.mark.parametrize("shape", ["eventgrid", "pascal", "cloudevents", "cloud-specVersion"])
async def test_sms_report_in_every_shape_is_recorded(svc: Services, shape: str) -> None:
    """Event Grid or CloudEvents, camelCase or PascalCase: the SMS report lands as Delivered."""
    provider_id = await _sent(svc, sms(f"shape-{shape}"), f"shape-{shape}")
    event = sms_report(provider_id, f"shape-{shape}")
    event = {
        "eventgrid": event,
        "pascal": pascal(event),
        "cloudevents": cloud(event),
        "cloud-specVersion": cloud(event, "specVersion"),
    }[shape]
    assert await svc.events.record(event) == EventOutcome.RECORDED
    assert await _status(svc, f"shape-{shape}") == Status.DELIVERED


async def test_the_capital_t_tag_variant_matches(svc: Services) -> None:
    """`Tag` with a capital T, as in the Learn sample, still matches the message."""
    provider_id = await _sent(svc, sms("cap-tag"), "cap-tag")
    event = sms_report(provider_id, None)
    event["data"]["Tag"] = "cap-tag"
    assert await svc.events.record(event) == EventOutcome.RECORDED


async def test_a_failed_segment_fails_the_message(svc: Services) -> None:
    """Any failed segment makes the SMS Failed, with the detail."""
    provider_id = await _sent(svc, sms("seg"), "seg")
    event = sms_report(provider_id, "seg")
    event["data"]["deliveryAttempts"][0]["segmentsFailed"] = 1
    await svc.events.record(event)
    row = await svc.ledger.get("seg")
    assert row is not None and row.status == Status.FAILED and "segment" in row.get("Reason")


async def test_the_same_event_five_times_is_one_row(svc: Services) -> None:
    """Redelivered events are deduplicated on (provider id, status, event time)."""
    provider_id = await _sent(svc, sms("dup"), "dup")
    outcomes = [await svc.events.record(sms_report(provider_id, "dup")) for _ in range(5)]
    assert outcomes.count(EventOutcome.RECORDED) == 1
    assert outcomes.count(EventOutcome.DUPLICATE) == 4
    assert len(await _event_rows(svc, "dup")) == 1


async def test_reverse_order_gives_the_same_final_state(svc: Services) -> None:
    """WhatsApp Read, Delivered, Sent arriving backwards still ends Read."""
    provider_id = await _sent(svc, whatsapp("rev"), "rev")
    for i, status in enumerate(["Read", "Delivered", "Sent"]):
        await svc.events.record(_wa_status(provider_id, status, f"2026-11-28T10:00:0{3 - i}Z"))
    assert await _status(svc, "rev") == Status.READ
    assert len(await _event_rows(svc, "rev")) == 3


def _wa_status(provider_id: str, status: str, when: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "topic": DEFAULT_TOPIC.lower(),
        "subject": f"advancedMessage/{provider_id}/status/x",
        "data": {
            "messageId": provider_id,
            "status": status.lower(),
            "channelType": "whatsapp",
            "from": "c",
            "to": "+14255550100",
            "receivedTimestamp": when,
        },
        "eventType": "Microsoft.Communication.AdvancedMessageDeliveryStatusUpdated",
        "dataVersion": "1.0",
        "eventTime": when,
    }


async def test_a_report_before_sent_is_recorded_and_sent_does_not_undo_it(svc: Services, clock: Clock) -> None:
    """A report that beats the Sent write ends Delivered; the late Sent keeps the status."""
    checked = _checked(svc, "early")
    await svc.sending.steps.acceptance.accept(checked, "queue")
    await svc.ledger.change("early", lambda r: replace(r, status=Status.SENDING))
    assert await svc.events.record(sms_report("Outgoing_early", "early")) == EventOutcome.RECORDED
    assert await _status(svc, "early") == Status.DELIVERED
    await svc.sending.steps.dispatcher.mark_sent(checked, "Outgoing_early", None)
    assert await _status(svc, "early") == Status.DELIVERED


async def test_an_unmatched_event_is_parked_then_rematched(svc: Services) -> None:
    """A WhatsApp status for an unknown receipt waits as an orphan, leaving a placeholder where the
    sender will index the id; it is applied once the id is known, and the placeholder is filled in."""
    assert await svc.events.record(_wa_status("receipt-x", "Delivered", T0)) == EventOutcome.ORPHANED
    index = svc.storage.table(svc.names.provider_ids)
    placeholder = await index.get("receipt-x", "receipt-x")
    assert placeholder is not None and "MessageId" not in placeholder.entity
    await svc.sending.steps.acceptance.accept(_checked(svc, "late-index", body=whatsapp("late-index")), "queue")
    row = {"PartitionKey": "receipt-x", "RowKey": "receipt-x", "MessageId": "late-index", "Channel": "whatsapp"}
    with pytest.raises(Conflict):  # the sender's insert meets the placeholder, so it knows to re-match
        await index.insert(row)
    await index.upsert(row)
    assert await svc.events.rematch("receipt-x") == 1
    assert await _status(svc, "late-index") == Status.DELIVERED


async def test_a_status_parked_after_the_sender_indexed_is_applied_by_the_parker(svc: Services) -> None:
    """The sender indexed the id between the status's lookup and its parking: the parker's placeholder
    insert meets the index row, so the parker applies the status itself."""
    await svc.sending.steps.acceptance.accept(_checked(svc, "early-index", body=whatsapp("early-index")), "queue")
    await svc.storage.table(svc.names.provider_ids).insert(
        {"PartitionKey": "receipt-y", "RowKey": "receipt-y", "MessageId": "early-index", "Channel": "whatsapp"}
    )
    event = normalise(envelope_from_dict(_wa_status("receipt-y", "Delivered", T0), svc.clock()))
    assert event is not None
    assert await svc.events._park(event) == EventOutcome.RECORDED  # the race, made to happen
    assert await _status(svc, "early-index") == Status.DELIVERED


async def test_a_status_whose_send_ends_during_its_index_read_is_applied_not_parked(svc: Services) -> None:
    """The status arrives while its send is in flight; the send learns the id (and ends) while the
    status is reading the index, which does not have it yet. The status must use what the send learnt
    instead of parking itself for a re-match through storage."""
    await svc.sending.steps.acceptance.accept(_checked(svc, "mid-read", body=whatsapp("mid-read")), "queue")
    await svc.ledger.change("mid-read", lambda r: replace(r, status=Status.SENDING))
    in_flight = svc.events.correlation.whatsapp_send_in_flight()
    in_flight.__enter__()

    class SendEndsDuringTheRead(TableStore):
        async def get(self, partition: str, row: str, select: Sequence[str] | None = None) -> Stored | None:
            found = await super().get(partition, row, select)
            svc.events.correlation.remember("receipt-mid", "mid-read")
            in_flight.__exit__(None, None, None)
            return found

    index = svc.events.correlation._table
    svc.events.correlation._table = SendEndsDuringTheRead(index._client)
    assert await svc.events.record(_wa_status("receipt-mid", "Sent", T0)) == EventOutcome.RECORDED
    assert await _status(svc, "mid-read") == Status.SENT
    orphans = svc.storage.table(svc.names.orphans)
    parked = [row async for row in orphans.query("PartitionKey eq @pk", {"pk": "receipt-mid"})]
    assert parked == []
    assert await index.get("receipt-mid", "receipt-mid") is None  # no placeholder left


async def test_a_sent_status_arriving_while_its_send_writes_adds_only_its_event_row(svc: Services) -> None:
    """WhatsApp's Sent status comes back as soon as ACS answers, often while the send is still writing
    its index row. It must wait for the send's own Sent write and then add just its event row: if it
    projected Sent itself, that would be an entity-group transaction plus a second ledger change."""
    arrivals: list[asyncio.Task[EventOutcome]] = []

    class StatusArrivesDuringTheIndexWrite(TableStore):
        async def insert(self, entity: Mapping[str, Any]) -> str:
            etag = await super().insert(entity)
            status = _wa_status(str(entity["RowKey"]), "Sent", T0)
            arrivals.append(asyncio.create_task(svc.events.record(status)))
            for _ in range(20):  # let the status get as far as it can before the send goes on
                await asyncio.sleep(0)
            return etag

    class CountingTransactions(TableStore):
        transactions = 0

        async def transact(self, ops: Any) -> list[str]:
            CountingTransactions.transactions += 1
            return await super().transact(ops)

    correlation = svc.events.correlation
    correlation._table = StatusArrivesDuringTheIndexWrite(correlation._table._client)
    svc.ledger._table = CountingTransactions(svc.ledger._table._client)

    assert await svc.sending.handle(_d(whatsapp("mid-write"))) == Outcome.SENT
    assert [await task for task in arrivals] == [EventOutcome.RECORDED]
    assert CountingTransactions.transactions == 0
    assert len(await _event_rows(svc, "mid-write")) == 1
    row = await svc.ledger.get("mid-write")
    assert row is not None and row.status == Status.SENT
    assert row.get("SentAt") != T0  # the send's own record, not one the status projected


async def test_a_delivery_recorded_before_its_send_still_gets_its_latency(
    svc: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """A fast provider's report can be recorded before the send writes Sent, when there is no SentAt to
    measure from. The send's write then measures it, so the fastest deliveries are not the ones
    missing from the latency figures, and the metric is emitted once."""
    provider = svc.sending.steps.dispatcher._provider

    class ReportsBeforeAnswering:
        async def send(self, checked: CheckedRequest, ids: SendIds) -> ProviderReceipt:
            receipt = await provider.send(checked, ids)
            report = sms_report(receipt.provider_message_id, checked.message_id, when=iso(utc_now()))
            assert await svc.events.record(report) == EventOutcome.RECORDED
            return receipt

    svc.sending.steps.dispatcher._provider = ReportsBeforeAnswering()  # type: ignore[assignment]
    with caplog.at_level(logging.INFO):
        assert await svc.sending.handle(_d(sms("fast"))) == Outcome.SENT
    row = await svc.ledger.get("fast")
    assert row is not None and row.status == Status.DELIVERED
    assert isinstance(row.get("DeliveryLatencyMs"), float)
    measured = [r for r in caplog.records if getattr(r, "metric_name", None) == "delivery_latency_ms"]
    assert [(r.value, r.status) for r in measured] == [(row.get("DeliveryLatencyMs"), "Delivered")]  # type: ignore[attr-defined]


async def test_given_up_statuses_take_their_placeholder_with_them(svc: Services, clock: Clock) -> None:
    assert await svc.events.record(_wa_status("receipt-z", "Delivered", T0)) == EventOutcome.ORPHANED
    clock.advance(hours=25)
    await svc.reconcile.run()
    assert await svc.storage.table(svc.names.provider_ids).get("receipt-z", "receipt-z") is None


async def test_events_from_another_topic_change_nothing(svc: Services) -> None:
    """A report from an untrusted topic is ignored and the message stays Sent."""
    provider_id = await _sent(svc, sms("foreign"), "foreign")
    event = sms_report(provider_id, "foreign")
    event["topic"] = "/subscriptions/evil/resourceGroups/x/providers/Microsoft.Communication/communicationServices/y"
    assert await svc.events.record(event) == EventOutcome.IGNORED
    assert await _status(svc, "foreign") == Status.SENT


async def test_malformed_events_are_recorded_as_rejected_not_raised(svc: Services) -> None:
    """Missing data or an unreadable time is recorded with its reason; nothing raises."""
    assert await svc.events.record({"id": "x", "topic": DEFAULT_TOPIC, "eventType": "a"}) == EventOutcome.REJECTED
    bad = sms_report("p", "t", when="yesterday")
    assert await svc.events.record(bad) == EventOutcome.REJECTED
    rows = [r async for r in svc.storage.table(svc.names.rejected_events).query("PartitionKey eq 'rejected-events'")]
    assert len(rows) == 2


async def test_unknown_event_types_are_ignored(svc: Services) -> None:
    """An event type we do not handle is ignored and counted."""
    event = sms_report("p", "t")
    event["eventType"] = "Microsoft.Communication.ChatMessageReceived"
    assert await svc.events.record(event) == EventOutcome.IGNORED


async def test_email_bounce_fails_and_suppresses_the_address(svc: Services) -> None:
    """A bounce makes the email Failed and the next email to that address Suppressed."""
    provider_id = await _sent(svc, email("bounce-1", to="bob@example.com"), "bounce-1")
    event = {
        "id": "e1",
        "topic": DEFAULT_TOPIC,
        "subject": "sender/x/message/y",
        "eventType": "Microsoft.Communication.EmailDeliveryReportReceived",
        "eventTime": T0,
        "data": {
            "sender": "noreply@contoso.example",
            "recipient": "Bob@Example.com",
            "messageId": provider_id,
            "status": "Bounced",
            "deliveryAttemptTimeStamp": T0,
            "deliveryStatusDetails": {"statusMessage": "mailbox unavailable"},
        },
    }
    assert await svc.events.record(event) == EventOutcome.RECORDED
    assert await _status(svc, "bounce-1") == Status.FAILED
    assert await svc.sending.handle(_d(email("bounce-2", to="bob@example.com"))) == Outcome.SUPPRESSED


async def test_engagement_is_recorded_but_never_changes_status(svc: Services) -> None:
    """A click is an event row; the status stays where the delivery report put it."""
    provider_id = await _sent(svc, email("click"), "click")
    event = {
        "id": "c1",
        "topic": DEFAULT_TOPIC,
        "subject": "s",
        "eventTime": T0,
        "eventType": "Microsoft.Communication.EmailEngagementTrackingReportReceived",
        "data": {
            "sender": "s",
            "recipient": "r",
            "messageId": provider_id,
            "engagementType": "Click",
            "userActionTimeStamp": T0,
            "engagementContext": "https://x",
        },
    }
    assert await svc.events.record(event) == EventOutcome.RECORDED
    assert await _status(svc, "click") == Status.SENT


async def test_expanded_is_not_a_failure(svc: Services) -> None:
    """Expanded (a distribution list) is recorded without failing the email."""
    provider_id = await _sent(svc, email("expanded"), "expanded")
    event = {
        "id": "x1",
        "topic": DEFAULT_TOPIC,
        "subject": "s",
        "eventTime": T0,
        "eventType": "Microsoft.Communication.EmailDeliveryReportReceived",
        "data": {
            "sender": "s",
            "recipient": "r",
            "messageId": provider_id,
            "status": "expanded",
            "deliveryStatusDetails": {},
        },
    }
    await svc.events.record(event)
    assert await _status(svc, "expanded") == Status.SENT


async def test_stop_then_start_by_inbound_sms(svc: Services, acs: AcsEmulator, webhook: Any) -> None:
    """STOP suppresses the next send from that number; START lets it through again."""
    webhook(svc.events.record)
    acs.inbound("+14255550177", SMS_SENDER, "stop")
    await eventually(lambda: _consent_blocked(svc, True))
    assert await svc.sending.handle(_d(sms("after-stop", to="+14255550177"))) == Outcome.SUPPRESSED
    acs.inbound("+14255550177", SMS_SENDER, "START")
    await eventually(lambda: _consent_blocked(svc, False))
    assert await svc.sending.handle(_d(sms("after-start", to="+14255550177"))) == Outcome.SENT


async def _consent_blocked(svc: Services, blocked: bool) -> bool:
    from shared.models import Channel

    decision = await svc.consent.check(Channel.SMS, "+14255550177", SMS_SENDER)
    return decision.allowed is not blocked


async def test_emulator_reports_reach_the_ledger(svc: Services, acs: AcsEmulator, webhook: Any) -> None:
    """Through the emulator's Event Grid delivery: delivered, failed, read and bounced outcomes."""
    webhook(svc.events.record)
    cases = {
        "rep-ok": sms("rep-ok", to="+14255550100"),
        "rep-fail": sms("rep-fail", to="+14255550101"),
        "rep-read": whatsapp("rep-read", to="+14255550107"),
        "rep-bounce": email("rep-bounce", to="eve+bounce@example.com"),
    }
    for body in cases.values():
        assert await svc.sending.handle(_d(body)) == Outcome.SENT
    expected = {
        "rep-ok": Status.DELIVERED,
        "rep-fail": Status.FAILED,
        "rep-read": Status.READ,
        "rep-bounce": Status.FAILED,
    }

    async def settled() -> bool:
        return all([await _status(svc, m) == s for m, s in expected.items()])

    await eventually(settled)


def _checked(svc: Services, message_id: str, body: bytes | None = None):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from shared.validation import check_request, parse_request

    return check_request(parse_request(body or sms(message_id)), svc.settings, message_id, datetime.now(UTC))


def _shapes() -> list[tuple[str, dict[str, Any], str, str]]:
    """One event per ACS type: (name, data, event type, provider id kind)."""
    return [
        (
            "sms-report",
            {
                "messageId": "{pid}",
                "from": "18005550100",
                "to": "+14255550100",
                "deliveryStatus": "Delivered",
                "deliveryStatusDetails": "No error.",
                "receivedTimestamp": T0,
                "tag": "{mid}",
                "deliveryAttempts": [{"timestamp": T0, "segmentsSucceeded": 1, "segmentsFailed": 0}],
            },
            "SMSDeliveryReportReceived",
            "sms",
        ),
        (
            "sms-inbound",
            {
                "messageId": "Incoming_1",
                "from": "+14255550123",
                "to": "+18005550100",
                "message": "HELP",
                "segmentCount": 1,
                "receivedTimestamp": T0,
            },
            "SMSReceived",
            "none",
        ),
        (
            "email-report",
            {
                "sender": "noreply@contoso.example",
                "recipient": "ann@example.com",
                "messageId": "{pid}",
                "status": "Delivered",
                "deliveryAttemptTimestamp": T0,
                "deliveryStatusDetails": {"statusMessage": "ok"},
            },
            "EmailDeliveryReportReceived",
            "email",
        ),
        (
            "email-engagement",
            {
                "sender": "s",
                "recipient": "r",
                "messageId": "{pid}",
                "engagementType": "view",
                "userActionTimestamp": T0,
            },
            "EmailEngagementTrackingReportReceived",
            "email",
        ),
        (
            "whatsapp-status",
            {
                "messageId": "{pid}",
                "status": "Delivered",
                "channelType": "whatsapp",
                "from": "c",
                "to": "+14255550100",
                "receivedTimestamp": T0,
            },
            "AdvancedMessageDeliveryStatusUpdated",
            "whatsapp",
        ),
        (
            "whatsapp-inbound",
            {
                "messageId": "in-1",
                "channelType": "whatsapp",
                "messageType": "text",
                "content": "hi",
                "from": "+14255550123",
                "to": "chan",
                "receivedTimestamp": T0,
            },
            "AdvancedMessageReceived",
            "none",
        ),
    ]


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
@pytest.mark.parametrize("casing", ["camel", "pascal"])
@pytest.mark.parametrize("shape", [s[0] for s in _shapes()])
async def test_every_acs_event_type_in_every_schema_and_casing(
    svc: Services, shape: str, schema: str, casing: str
) -> None:
    """All six ACS event types, in both schemas and both casings, are recorded (not ignored or rejected)."""
    name, data, event_type, kind = next(s for s in _shapes() if s[0] == shape)
    message_id = f"shape-{shape}-{schema}-{casing}"
    body = {"sms": sms, "email": email, "whatsapp": whatsapp, "none": sms}[kind](message_id)
    provider_id = await _sent(svc, body, message_id)
    filled = json.loads(json.dumps(data).replace("{pid}", provider_id).replace("{mid}", message_id))
    event = {
        "id": str(uuid.uuid4()),
        "topic": DEFAULT_TOPIC,
        "subject": "s",
        "data": filled,
        "eventType": f"Microsoft.Communication.{event_type}",
        "dataVersion": "1.0",
        "eventTime": T0,
    }
    event = pascal(event) if casing == "pascal" else event
    event = cloud(event) if schema == "cloudevents" else event
    outcome = await svc.events.record(event)
    expected = EventOutcome.INBOUND if kind == "none" else EventOutcome.RECORDED
    assert outcome == expected, name
    if name in {"sms-report", "email-report", "whatsapp-status"}:
        assert await _status(svc, message_id) == Status.DELIVERED


async def test_the_etag_hint_after_a_report_is_the_stored_etag(svc: Services) -> None:
    """After recording a report, the remembered etag is the row's real one, so the next report skips a read."""
    provider_id = await _sent(svc, whatsapp("hinted"), "hinted")
    await svc.events.record(_wa_status(provider_id, "Delivered", "2026-11-28T10:00:01Z"))
    hint = svc.ledger.hint("hinted")
    stored = await svc.storage.table(svc.names.messages).get("hinted", ledger_row_key("hinted"))
    assert hint is not None and stored is not None
    assert hint.etag == stored.etag and hint.status == Status.DELIVERED


async def test_concurrent_reports_of_one_message_take_turns_instead_of_racing(
    svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Statuses of one message arriving together are written one after the other in this instance,
    each with the etag the previous one left, so none pays a failed transaction and a read."""
    provider_id = await _sent(svc, whatsapp("together"), "together")
    reads: list[str] = []
    real_get = svc.ledger.get

    async def counting_get(message_id: str):  # type: ignore[no-untyped-def]
        reads.append(message_id)
        return await real_get(message_id)

    monkeypatch.setattr(svc.ledger, "get", counting_get)  # a spy: storage stays real
    statuses = [
        ("Sent", "2026-11-28T10:00:01Z"),
        ("Delivered", "2026-11-28T10:00:02Z"),
        ("Read", "2026-11-28T10:00:03Z"),
    ]
    outcomes = await asyncio.gather(*(svc.events.record(_wa_status(provider_id, s, t)) for s, t in statuses))
    assert outcomes == [EventOutcome.RECORDED] * 3
    assert reads == []
    assert await _status(svc, "together") == Status.READ


async def test_a_status_that_beats_its_send_waits_for_the_id_instead_of_parking(svc: Services) -> None:
    """While a WhatsApp send is in flight here, its status (unknown id so far) waits for the send to
    learn the id, and is recorded directly: no orphan row, no re-match through storage."""
    await svc.sending.steps.acceptance.accept(_checked(svc, "in-flight", body=whatsapp("in-flight")), "queue")
    with svc.events.correlation.whatsapp_send_in_flight():
        recording = asyncio.ensure_future(svc.events.record(_wa_status("receipt-early", "Delivered", T0)))
        await asyncio.sleep(0.2)  # ACS has not answered yet
        assert not recording.done()
    svc.events.correlation.remember("receipt-early", "in-flight")  # the answer arrives
    assert await recording == EventOutcome.RECORDED
    assert await _status(svc, "in-flight") == Status.DELIVERED
    orphans = svc.storage.table(svc.names.orphans)
    assert [r async for r in orphans.query("PartitionKey eq @pk", {"pk": "receipt-early"})] == []


async def test_a_status_whose_send_never_learns_its_id_is_parked_after_the_wait(svc: Services) -> None:
    with svc.events.correlation.whatsapp_send_in_flight():
        outcome = await svc.events.record(_wa_status("receipt-never", "Delivered", T0))
    assert outcome == EventOutcome.ORPHANED
