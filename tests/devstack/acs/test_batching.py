"""Event Grid batched delivery: several events per webhook POST when the subscription allows it.

Most tests use an emulator with a single delivery pump (concurrency 1) and a receiver that holds its
answers: one event is left waiting at the webhook while others become ready behind it, so which
events share a batch is known exactly once the receiver lets go.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from azure.communication.messages import NotificationMessagesClient
from azure.communication.messages.models import TextNotificationContent
from azure.communication.sms import SmsClient
from azure.core.credentials import AzureKeyCredential
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent

from devstack.acs import AcsAdminClient, AcsEmulator, AdminApiError, DeliveryPolicy
from devstack.acs.cli import parser, settings_from
from devstack.acs.config import ConfigError
from tests.devstack.acs.conftest import DEFAULTS, REPORT_DELAY, SENDER, wait_for
from tests.devstack.acs.receiver import Delivery, Receiver

CHANNEL = "6b36a8e2-0000-4000-8000-000000000001"
BLOCKER = "+15555550100"
# long enough for events sent now to be ready (report delay 0.05 s) before the receiver lets go
SETTLE = 0.5


@pytest.fixture(scope="module")
def one_pump_emulator() -> Iterator[AcsEmulator]:
    policy = DeliveryPolicy(backoff=0.05, max_attempts=4, timeout=5.0, concurrency=1)
    with AcsEmulator(report_delay=REPORT_DELAY, delivery=policy) as acs:
        yield acs


@pytest.fixture
def narrow(one_pump_emulator: AcsEmulator, receiver: Receiver) -> Iterator[AcsEmulator]:
    """The single-pump emulator, reset, batching up to 10 events, delivering to the receiver."""
    one_pump_emulator.reset()
    one_pump_emulator.configure(**{**DEFAULTS, "max_events_per_batch": 10})
    one_pump_emulator.set_webhook(receiver.url)
    receiver.clear()
    yield one_pump_emulator
    receiver.release()


def sms_client(acs: AcsEmulator) -> SmsClient:
    return SmsClient(acs.endpoint, AzureKeyCredential(acs.access_key), retry_total=0)


def send_sms(client: SmsClient, *numbers: str) -> list[str]:
    """One SMS request to these numbers, with delivery reports; the message ids in recipient order."""
    results = client.send(from_=SENDER, to=list(numbers), message="Hi", enable_delivery_report=True)
    return [str(result.message_id) for result in results]


def numbers(count: int, first: int = 10) -> list[str]:
    """Distinct numbers whose last two digits (10 and up) choose the plain 'delivered' plan."""
    return [f"+155555{n:03d}{n % 90 + 10:02d}" for n in range(first, first + count)]


def queue_behind_blocker(acs: AcsEmulator, receiver: Receiver, send: Any) -> list[str]:
    """Hold the receiver on one delivery, run `send()` so its events queue up, then let go."""
    receiver.hold()
    send_sms(sms_client(acs), BLOCKER)
    wait_for(lambda: receiver.in_flight() == 1)
    ids: list[str] = send()
    time.sleep(SETTLE)
    receiver.release()
    return ids


def records(acs: AcsEmulator) -> dict[str, dict[str, Any]]:
    """Events log rows by event id."""
    return {record.event_id: record.to_json() for record in acs.events()}


def ids_of(delivery: Delivery) -> list[str]:
    return [str(event["id"]) for event in delivery.events]


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


# default and limits -------------------------------------------------------------------------------


def test_default_is_one_event_per_request(sms: SmsClient, acs: AcsEmulator, receiver: Receiver) -> None:
    """Without batching, events that are ready together still go one per POST, each with its own id header."""
    message_ids = send_sms(sms, *numbers(6))

    wait_for(lambda: len(acs.events()) == 6)

    deliveries = receiver.deliveries()
    assert len(deliveries) == 6
    assert all(len(d.events) == 1 for d in deliveries)
    assert all(lower(d.headers)["aeg-output-event-id"] == d.event["id"] for d in deliveries)
    assert sorted(e["id"] for e in receiver.events()) == sorted(message_ids)


def test_concurrent_sends_are_batched_up_to_the_max(acs: AcsEmulator, receiver: Receiver) -> None:
    """While the webhook is busy, events from concurrent sends pile up and go out at most 10 per POST.

    Every pump (one per allowed POST) is either waiting at the held webhook or idle with nothing
    queued, so at most `pumps` POSTs are held and what queued behind them leaves in full batches.
    """
    acs.configure(max_events_per_batch=10)
    pumps = acs.settings.delivery.concurrency
    receiver.hold()
    with ThreadPoolExecutor(max_workers=8) as pool:
        message_ids = [
            message_id
            for ids in pool.map(lambda to: send_sms(sms_client(acs), to), numbers(pumps + 24))
            for message_id in ids
        ]
    time.sleep(SETTLE)
    receiver.release()

    wait_for(lambda: len(acs.events()) == len(message_ids))

    deliveries = receiver.deliveries()
    sizes = [len(d.events) for d in deliveries]
    assert max(sizes) <= 10
    assert len(deliveries) <= pumps + 3  # 16 held POSTs, then 24 events in batches of 10, 10 and 4
    assert sorted(e["id"] for e in receiver.events()) == sorted(message_ids)
    assert {(r.outcome, r.attempts) for r in acs.events()} == {("delivered", 1)}


def test_batches_hold_at_most_the_max(narrow: AcsEmulator, receiver: Receiver) -> None:
    """25 events waiting behind a busy webhook leave as 10, 10 and 5, in the order they were queued."""
    message_ids = queue_behind_blocker(narrow, receiver, lambda: send_sms(sms_client(narrow), *numbers(25)))

    wait_for(lambda: len(narrow.events()) == 26)

    deliveries = receiver.deliveries()
    assert [len(d.events) for d in deliveries] == [1, 10, 10, 5]
    assert [event_id for d in deliveries[1:] for event_id in ids_of(d)] == message_ids


def test_batch_stops_before_the_preferred_size(narrow: AcsEmulator, receiver: Receiver) -> None:
    """With a 2 KB preference, ten ~700-byte reports go in several POSTs, each as full as 2 KB allows."""
    narrow.configure(preferred_batch_kb=2)
    message_ids = queue_behind_blocker(narrow, receiver, lambda: send_sms(sms_client(narrow), *numbers(10)))

    wait_for(lambda: len(narrow.events()) == 11)

    batches = receiver.deliveries()[1:]
    assert len(batches) > 1  # the count limit alone (10) would have sent them in one POST
    assert all(b.size <= 2048 for b in batches)
    assert any(len(b.events) > 1 for b in batches)
    for batch, following in itertools.pairwise(batches):
        next_event = len(json.dumps(following.events[0]).encode("utf-8"))
        assert batch.size + len(b", ") + next_event > 2048  # it stopped only because the next would not fit
    assert sorted(e["id"] for b in batches for e in b.events) == sorted(message_ids)


def test_event_over_the_preferred_size_is_delivered_alone(narrow: AcsEmulator, receiver: Receiver) -> None:
    """An event bigger than the preferred size (a long inbound text, 1 KB preferred) still goes, on its own."""
    narrow.configure(preferred_batch_kb=1)

    def inbound_twice() -> list[str]:
        return [narrow.inbound("+15555550199", SENDER, "x" * 1500).event_id for _ in range(2)]

    event_ids = queue_behind_blocker(narrow, receiver, inbound_twice)

    wait_for(lambda: len(narrow.events()) == 3)

    batches = receiver.deliveries()[1:]
    assert [ids_of(b) for b in batches] == [[event_ids[0]], [event_ids[1]]]
    assert all(b.size > 1024 for b in batches)
    assert {records(narrow)[event_id]["outcome"] for event_id in event_ids} == {"delivered"}


# shape of a batch ---------------------------------------------------------------------------------


def test_batch_is_one_array_with_event_grid_headers(narrow: AcsEmulator, receiver: Receiver) -> None:
    """Events ready together go as one JSON array of valid Event Grid events, with Notification headers."""
    message_ids = queue_behind_blocker(narrow, receiver, lambda: send_sms(sms_client(narrow), *numbers(5)))

    wait_for(lambda: len(narrow.events()) == 6)

    blocker, batch = receiver.deliveries()
    assert len(blocker.events) == 1
    assert sorted(ids_of(batch)) == sorted(message_ids)
    headers = lower(batch.headers)
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["aeg-event-type"] == "Notification"
    assert headers["aeg-delivery-count"] == "0"
    assert headers["aeg-subscription-name"] == "LOCAL-ACS-EVENTS"
    assert headers["aeg-output-event-id"] == batch.events[0]["id"]
    parsed = [EventGridEvent.from_dict(event) for event in batch.events]
    assert {event.event_type for event in parsed} == {"Microsoft.Communication.SMSDeliveryReportReceived"}


def test_cloudevents_batch_has_the_batch_content_type(narrow: AcsEmulator, receiver: Receiver) -> None:
    """With the CloudEvents schema a batch is an array of CloudEvents sent as cloudevents-batch+json."""
    narrow.configure(schema="cloudevents")
    message_ids = queue_behind_blocker(narrow, receiver, lambda: send_sms(sms_client(narrow), *numbers(3)))

    wait_for(lambda: len(narrow.events()) == 4)

    batch = receiver.deliveries()[1]
    assert lower(batch.headers)["content-type"] == "application/cloudevents-batch+json; charset=utf-8"
    assert sorted(CloudEvent.from_dict(event).id for event in batch.events) == sorted(message_ids)


# order --------------------------------------------------------------------------------------------


def test_each_message_keeps_its_planned_order(narrow: AcsEmulator, receiver: Receiver) -> None:
    """A WhatsApp plan's Delivered is only queued once its Sent was delivered: never in the same batch."""
    client = NotificationMessagesClient(narrow.endpoint, AzureKeyCredential(narrow.access_key), retry_total=0)
    content = TextNotificationContent(channel_registration_id=CHANNEL, to=numbers(5), content="Hi")

    message_ids = queue_behind_blocker(
        narrow, receiver, lambda: [str(r.message_id) for r in client.send(content).receipts]
    )

    wait_for(lambda: len(narrow.events()) == 11)

    deliveries = receiver.deliveries()
    for message_id in message_ids:
        seen = [
            (index, event["data"]["status"])
            for index, delivery in enumerate(deliveries)
            for event in delivery.events
            if event["data"]["messageId"] == message_id
        ]
        [(sent_at, sent), (delivered_at, delivered)] = seen
        assert (sent, delivered) == ("Sent", "Delivered")
        assert sent_at < delivered_at
    assert [len(d.events) for d in deliveries] == [1, 5, 5]


# all-or-none --------------------------------------------------------------------------------------


def test_failed_batch_is_redelivered_whole(narrow: AcsEmulator, receiver: Receiver) -> None:
    """A 500 for a batch redelivers every event in it, together; each record shows both attempts."""
    receiver.respond_with(200, 500)
    message_ids = queue_behind_blocker(narrow, receiver, lambda: send_sms(sms_client(narrow), *numbers(5)))

    wait_for(lambda: len(narrow.events()) == 6)

    blocker, failed, retried = receiver.deliveries()
    assert (failed.answered, retried.answered) == (500, 200)
    assert sorted(ids_of(failed)) == sorted(ids_of(retried)) == sorted(message_ids)
    assert [lower(d.headers)["aeg-delivery-count"] for d in (failed, retried)] == ["0", "1"]
    rows = records(narrow)
    for message_id in message_ids:
        assert (rows[message_id]["outcome"], rows[message_id]["attempts"]) == ("delivered", 2)
        assert rows[message_id]["httpStatuses"] == [500, 200]
    assert rows[ids_of(blocker)[0]]["attempts"] == 1


def test_batch_answered_400_is_dead_lettered_whole(narrow: AcsEmulator, receiver: Receiver) -> None:
    """A 400 for a batch is not retried: every event in it is dead-lettered after that one attempt."""
    receiver.respond_with(200, 400)
    message_ids = queue_behind_blocker(narrow, receiver, lambda: send_sms(sms_client(narrow), *numbers(5)))

    wait_for(lambda: len(narrow.events()) == 6)

    assert [len(d.events) for d in receiver.deliveries()] == [1, 5]
    rows = records(narrow)
    for message_id in message_ids:
        assert rows[message_id]["outcome"] == "deadLettered"
        assert rows[message_id]["reason"] == "UndeliverableDueToHttp400"
        assert rows[message_id]["httpStatuses"] == [400]


# lifecycle ----------------------------------------------------------------------------------------


def test_reset_abandons_queued_events_and_batching_resumes(narrow: AcsEmulator, receiver: Receiver) -> None:
    """A reset drops the batch in flight and the events queued behind it; later events still batch."""
    receiver.hold()
    client = sms_client(narrow)
    send_sms(client, BLOCKER)
    wait_for(lambda: receiver.in_flight() == 1)
    send_sms(client, *numbers(5))
    time.sleep(SETTLE)

    narrow.reset()

    wait_for(lambda: narrow.pending_deliveries() == 0)
    receiver.release()
    receiver.clear()
    message_ids = queue_behind_blocker(narrow, receiver, lambda: send_sms(client, *numbers(3, first=40)))
    wait_for(lambda: len(narrow.events()) == 4)
    assert sorted(ids_of(receiver.deliveries()[-1])) == sorted(message_ids)
    assert narrow.pending_deliveries() == 0


def test_restarted_emulator_still_batches(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    """After stop() and start() (a new event loop), batched delivery works again, and no pump fails on
    asyncio objects left bound to the old loop (it would be logged as an unretrieved task error)."""
    policy = DeliveryPolicy(backoff=0.05, max_attempts=4, timeout=5.0, concurrency=1)
    acs = AcsEmulator(report_delay=REPORT_DELAY, webhook_url=receiver.url, max_events_per_batch=10, delivery=policy)
    receiver.clear()
    try:
        for run, logged in ((1, 4), (2, 8)):  # stop() keeps the events log
            acs.start()
            message_ids = queue_behind_blocker(acs, receiver, lambda: send_sms(sms_client(acs), *numbers(3)))
            wait_for(lambda logged=logged: len(acs.events()) == logged)
            assert sorted(ids_of(receiver.deliveries()[-1])) == sorted(message_ids), f"run {run}"
            acs.stop()
            receiver.clear()
    finally:
        acs.stop()
        receiver.release()
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []


# settings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"max_events_per_batch": 0},
        {"max_events_per_batch": 5001},
        {"preferred_batch_kb": 0},
        {"preferred_batch_kb": 1025},
    ],
)
def test_out_of_range_batch_settings_are_refused(acs: AcsEmulator, settings: dict[str, int]) -> None:
    """The constructor and configure() refuse values outside Event Grid's ranges; settings stay as they were."""
    with pytest.raises(ConfigError):
        AcsEmulator(**settings)
    with pytest.raises(ConfigError):
        acs.configure(**settings)
    assert (acs.settings.max_events_per_batch, acs.settings.preferred_batch_kb) == (1, 64)


def test_range_ends_are_accepted(acs: AcsEmulator) -> None:
    """Both ends of Event Grid's ranges are valid."""
    assert acs.configure(max_events_per_batch=5000, preferred_batch_kb=1).max_events_per_batch == 5000
    assert acs.configure(max_events_per_batch=1, preferred_batch_kb=1024).preferred_batch_kb == 1024


def test_admin_api_sets_and_shows_batching(acs: AcsEmulator) -> None:
    """PUT /admin/config takes Event Grid's names; GET /admin/config and health show them."""
    admin = AcsAdminClient(acs.endpoint)
    assert admin.config()["maxEventsPerBatch"] == 1

    shown = admin.configure(maxEventsPerBatch=25, preferredBatchSizeInKilobytes=128)

    assert (shown["maxEventsPerBatch"], shown["preferredBatchSizeInKilobytes"]) == (25, 128)
    assert (acs.settings.max_events_per_batch, acs.settings.preferred_batch_kb) == (25, 128)
    assert admin.health()["settings"]["maxEventsPerBatch"] == 25


@pytest.mark.parametrize(
    "body",
    [
        {"maxEventsPerBatch": 0},
        {"maxEventsPerBatch": 5001},
        {"maxEventsPerBatch": 2.5},
        {"maxEventsPerBatch": True},
        {"maxEventsPerBatch": "10"},
        {"maxEventsPerBatch": None},
        {"preferredBatchSizeInKilobytes": 0},
        {"preferredBatchSizeInKilobytes": 1025},
    ],
)
def test_admin_api_refuses_bad_batching_values(acs: AcsEmulator, body: dict[str, Any]) -> None:
    """Out-of-range, fractional, boolean, string or null batching values are a 400 that changes nothing."""
    with pytest.raises(AdminApiError) as caught:
        AcsAdminClient(acs.endpoint).configure(**body)

    assert caught.value.status == 400
    assert (acs.settings.max_events_per_batch, acs.settings.preferred_batch_kb) == (1, 64)


def test_cli_passes_batching_settings() -> None:
    """The CLI flags reach the settings, and are checked like the other ways in."""
    settings = settings_from(parser().parse_args(["--max-events-per-batch", "50", "--preferred-batch-kb", "256"]))

    assert (settings.max_events_per_batch, settings.preferred_batch_kb) == (50, 256)
    assert settings_from(parser().parse_args([])).max_events_per_batch == 1
    with pytest.raises(ConfigError):
        settings_from(parser().parse_args(["--max-events-per-batch", "0"]))
