"""Event Grid delivery to the webhook: request shape, headers, schemas, retries and dead-lettering."""

from __future__ import annotations

import socket
import time

from azure.communication.sms import SmsClient
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent

from devstack.acs import DEFAULT_TOPIC, AcsEmulator
from tests.devstack.acs.conftest import SENDER, wait_for
from tests.devstack.acs.receiver import Receiver


def send_reported(sms: SmsClient, to: str = "+15555550100", tag: str | None = "m-1") -> str:
    [result] = sms.send(from_=SENDER, to=to, message="Hi", enable_delivery_report=True, tag=tag)
    return str(result.message_id)


def finished(acs: AcsEmulator, message_id: str) -> list[dict[str, object]]:
    return [e.to_json() for e in acs.events() if e.message_id == message_id]


def test_delivery_has_event_grid_headers(sms: SmsClient, receiver: Receiver) -> None:
    """Each delivery carries the aeg-* headers, a first delivery count of 0, and a JSON array of one event."""
    message_id = send_reported(sms)

    [delivery] = wait_for(receiver.deliveries)

    headers = {key.lower(): value for key, value in delivery.headers.items()}
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["aeg-event-type"] == "Notification"
    assert headers["aeg-delivery-count"] == "0"
    assert headers["aeg-subscription-name"] == "LOCAL-ACS-EVENTS"
    assert (headers["aeg-data-version"], headers["aeg-metadata-version"]) == ("1.0", "1")
    assert headers["aeg-output-event-id"] == message_id
    assert len(delivery.events) == 1


def test_event_grid_envelope_parses_with_azure_eventgrid(sms: SmsClient, receiver: Receiver) -> None:
    """The delivered event is a valid Event Grid event with the default topic."""
    message_id = send_reported(sms)

    [raw] = receiver.wait_events(message_id, 1)
    event = EventGridEvent.from_dict(raw)

    assert event.event_type == "Microsoft.Communication.SMSDeliveryReportReceived"
    assert event.topic == DEFAULT_TOPIC
    assert (event.data_version, raw["metadataVersion"]) == ("1.0", "1")


def test_cloudevents_schema(sms: SmsClient, acs: AcsEmulator, receiver: Receiver) -> None:
    """With schema=cloudevents the event is a CloudEvent (lower-case specversion) with its content type."""
    acs.configure(schema="cloudevents")
    send_reported(sms)

    [delivery] = wait_for(receiver.deliveries)
    event = CloudEvent.from_dict(delivery.event)

    assert delivery.headers["Content-Type"] == "application/cloudevents+json; charset=utf-8"
    assert event.type == "Microsoft.Communication.SMSDeliveryReportReceived"
    assert event.source == DEFAULT_TOPIC


def test_pascal_casing_of_data_keys(sms: SmsClient, acs: AcsEmulator, receiver: Receiver) -> None:
    """With casing=pascal the data keys are PascalCase as in the spec samples, envelope keys unchanged."""
    acs.configure(casing="pascal")
    send_reported(sms, tag="m-7")

    [delivery] = wait_for(receiver.deliveries)

    data = delivery.event["data"]
    assert data["Tag"] == "m-7"
    assert data["DeliveryStatus"] == "Delivered"
    assert "SegmentsSucceeded" in data["DeliveryAttempts"][0]
    assert "eventType" in delivery.event


def test_configured_topic_is_used(sms: SmsClient, acs: AcsEmulator, receiver: Receiver) -> None:
    """The topic set through configure appears in the envelope."""
    topic = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Communication/communicationServices/other"
    acs.configure(topic=topic)
    send_reported(sms)

    [delivery] = wait_for(receiver.deliveries)

    assert delivery.event["topic"] == topic


def test_retries_after_500(sms: SmsClient, acs: AcsEmulator, receiver: Receiver) -> None:
    """A 500 from the webhook is retried, with aeg-delivery-count counting the earlier attempts."""
    receiver.respond_with(500)
    message_id = send_reported(sms)

    [record] = wait_for(lambda: finished(acs, message_id))

    assert record["outcome"] == "delivered"
    assert record["httpStatuses"] == [500, 200]
    assert [d.headers["aeg-delivery-count"] for d in receiver.deliveries()] == ["0", "1"]


def test_no_retry_after_400(sms: SmsClient, acs: AcsEmulator, receiver: Receiver) -> None:
    """A 400 from the webhook is not retried; the event is dead-lettered after one attempt."""
    receiver.respond_with(400)
    message_id = send_reported(sms)

    [record] = wait_for(lambda: finished(acs, message_id))

    assert record["outcome"] == "deadLettered"
    assert record["attempts"] == 1
    assert record["reason"] == "UndeliverableDueToHttp400"
    assert len(receiver.deliveries()) == 1


def test_gives_up_after_max_attempts(sms: SmsClient, acs: AcsEmulator, receiver: Receiver) -> None:
    """A webhook that keeps failing gets max_attempts tries, then the event is dead-lettered."""
    receiver.respond_with(503, 503, 503, 503)
    message_id = send_reported(sms)

    [record] = wait_for(lambda: finished(acs, message_id))

    assert record["reason"] == "MaxDeliveryAttemptsExceeded"
    assert record["httpStatuses"] == [503, 503, 503, 503]


def test_connection_errors_are_retried(sms: SmsClient, acs: AcsEmulator) -> None:
    """An unreachable webhook is retried like a failure, and recorded with no HTTP status."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    acs.set_webhook(f"http://127.0.0.1:{closed_port}/runtime/webhooks/eventgrid")
    message_id = send_reported(sms)

    [record] = wait_for(lambda: finished(acs, message_id))

    assert record["outcome"] == "deadLettered"
    assert record["httpStatuses"] == [None, None, None, None]


def test_without_webhook_events_are_logged_as_undelivered(sms: SmsClient, acs: AcsEmulator) -> None:
    """With no webhook configured, each event is logged as noWebhook rather than silently dropped."""
    acs.set_webhook(None)
    message_id = send_reported(sms)

    [record] = wait_for(lambda: finished(acs, message_id))

    assert record["outcome"] == "noWebhook"


def test_slow_webhook_neither_blocks_sends_nor_serialises_deliveries(
    sms: SmsClient, acs: AcsEmulator, receiver: Receiver
) -> None:
    """Deliveries to a webhook that takes 0.5 s each overlap, and sends keep answering meanwhile."""
    receiver.answer_after(0.5)
    started = time.monotonic()
    message_ids = [send_reported(sms, to=f"+155555501{n}0") for n in range(1, 5)]

    wait_for(lambda: len(acs.events()) == 4)

    assert len(set(message_ids)) == 4
    assert time.monotonic() - started < 1.5
