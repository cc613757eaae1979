"""The local topic delivers as Event Grid does: handshake, retries with backoff, batching, dead-lettering.

Retry delays run at 1/500 of Event Grid's schedule (see conftest.TIME_SCALE), so the tests check the
real shape (10 s, 30 s, 1 min, ... and the minimums for 503) in milliseconds. Timing checks are lower
bounds only: a loaded machine may deliver later, never earlier.
"""

from __future__ import annotations

import itertools
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devstack.eventgrid import DEFAULT_KEY, ConfigError, LocalTopic
from devstack.eventgrid.config import RETRY_SCHEDULE
from tests.devstack.acs.conftest import wait_for
from tests.devstack.eventgrid.conftest import TIME_SCALE, subscription
from tests.devstack.eventgrid.subscriber import Subscriber


def _cloudevents(tag: str, count: int, pad: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "specversion": "1.0",
            "id": f"{tag}:{n}",
            "source": "/contact-messages",
            "type": "ContactMessages.MessageStatusChanged",
            "subject": f"messages/{tag}",
            "data": {"messageId": tag, "sequence": n, "pad": "x" * pad},
        }
        for n in range(1, count + 1)
    ]


def _publish(topic: LocalTopic, events: list[dict[str, Any]], content_type: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - the local topic on loopback
        f"{topic.endpoint}?api-version=2018-01-01",
        data=json.dumps(events).encode(),
        headers={"aeg-sas-key": DEFAULT_KEY, "Content-Type": content_type},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return int(response.status)


def _publish_cloudevents(topic: LocalTopic, events: list[dict[str, Any]]) -> None:
    assert _publish(topic, events, "application/cloudevents-batch+json; charset=utf-8") == 200


def test_cloudevents_subscription_is_validated_with_options(
    topic: LocalTopic, subscriber: Subscriber, path: str
) -> None:
    """The CloudEvents abuse-protection OPTIONS request comes first; then one event per request, as an object."""
    topic.subscribe(subscription(subscriber, path))
    [handshake] = subscriber.handshakes(path)
    assert (handshake["method"], handshake["headers"]["WebHook-Request-Origin"]) == ("OPTIONS", "eventgrid.azure.net")
    _publish_cloudevents(topic, _cloudevents(path, 2))
    arrivals = wait_for(lambda: len(subscriber.arrivals(path)) == 2 and subscriber.arrivals(path))
    assert all(a.single_object and len(a.events) == 1 for a in arrivals)
    assert {a.headers["Content-Type"] for a in arrivals} == {"application/cloudevents+json; charset=utf-8"}
    assert {a.headers["aeg-event-type"] for a in arrivals} == {"Notification"}


def test_an_endpoint_that_does_not_agree_gets_nothing(topic: LocalTopic, subscriber: Subscriber, path: str) -> None:
    """Without WebHook-Allowed-Origin the subscription is not created and no event is delivered."""
    subscriber.configure(path, agree=False)
    with pytest.raises(ConfigError, match="WebHook-Allowed-Origin"):
        topic.subscribe(subscription(subscriber, path))
    _publish_cloudevents(topic, _cloudevents(path, 1))
    assert subscriber.arrivals(path) == []


def test_eventgrid_schema_subscription_echoes_the_validation_code(
    eventgrid_topic: LocalTopic, subscriber: Subscriber, path: str
) -> None:
    """A SubscriptionValidationEvent is POSTed first and its code echoed; events then arrive as arrays."""
    eventgrid_topic.subscribe(subscription(subscriber, path))
    [handshake] = subscriber.handshakes(path)
    assert handshake["headers"]["aeg-event-type"] == "SubscriptionValidation"
    assert handshake["body"][0]["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent"
    event = {"id": "e1", "subject": "messages/m", "eventType": "T", "eventTime": "2026-01-01T00:00:00Z"}
    _publish(eventgrid_topic, [{**event, "data": {}, "dataVersion": "1"}], "application/json")
    [arrival] = wait_for(lambda: subscriber.arrivals(path))
    assert not arrival.single_object and arrival.events[0]["id"] == "e1" and arrival.events[0]["topic"]


def test_manual_validation_by_the_validation_url(
    eventgrid_topic: LocalTopic, subscriber: Subscriber, path: str
) -> None:
    """An endpoint that answers 200 without the code is activated by a GET of validationUrl."""
    subscriber.configure(path, echo_code=False)
    with pytest.raises(ConfigError, match="validation"):
        eventgrid_topic.subscribe(subscription(subscriber, path))
    url = subscriber.handshakes(path)[0]["body"][0]["data"]["validationUrl"]
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - the local topic on loopback
        assert response.status == 200
    event = {"id": "e2", "subject": "s", "eventType": "T", "eventTime": "2026-01-01T00:00:00Z", "data": {}}
    _publish(eventgrid_topic, [{**event, "dataVersion": "1"}], "application/json")
    assert wait_for(lambda: subscriber.delivered(path))[0]["id"] == "e2"


@pytest.mark.parametrize("failing", [500, 503])
def test_retries_back_off_on_event_grids_schedule(
    topic: LocalTopic, subscriber: Subscriber, path: str, failing: int
) -> None:
    """A subscriber failing 3 times gets 4 attempts, 10 s, 30 s, 60 s apart (scaled), 30 s at least after a 503."""
    subscriber.configure(path, statuses=(failing,) * 3)
    topic.subscribe(subscription(subscriber, path))
    _publish_cloudevents(topic, _cloudevents(path, 1))
    arrivals = wait_for(lambda: len(subscriber.arrivals(path)) == 4 and subscriber.arrivals(path), timeout=10)
    assert [a.answered for a in arrivals] == [failing, failing, failing, 200]
    assert [a.headers["aeg-delivery-count"] for a in arrivals] == ["0", "1", "2", "3"]
    minimum = 30.0 if failing == 503 else 0.0
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(arrivals)]
    for gap, step in zip(gaps, RETRY_SCHEDULE, strict=False):
        assert gap >= max(step, minimum) * TIME_SCALE
    [record] = topic.deliveries(path)
    assert (record.outcome, record.attempts, record.http_statuses) == ("delivered", 4, (failing,) * 3 + (200,))


def test_dead_letter_after_max_delivery_attempts(
    topic: LocalTopic, subscriber: Subscriber, path: str, dead_letter_dir: Path
) -> None:
    """With maxDeliveryAttempts 3 and a subscriber that always fails, the event is dead-lettered after 3 tries."""
    subscriber.configure(path, statuses=(500,) * 10)
    topic.subscribe(subscription(subscriber, path, attempts=3))
    _publish_cloudevents(topic, _cloudevents(path, 1))
    [letter] = wait_for(lambda: topic.dead_letters(path), timeout=10)
    assert (letter["id"], letter["deadletterreason"], letter["deliveryattempts"]) == (
        f"{path}:1",
        "MaxDeliveryAttemptsExceeded",
        3,
    )
    assert letter["lastdeliveryoutcome"] == "GenericError" and letter["publishtime"]
    assert len(subscriber.arrivals(path)) == 3
    [blob] = list((dead_letter_dir / path.upper()).rglob("*.json"))
    assert json.loads(blob.read_text()) == [letter]


def test_dead_letter_when_the_time_to_live_runs_out(topic: LocalTopic, subscriber: Subscriber, path: str) -> None:
    """With a 1-minute TTL (120 ms scaled) the event is dead-lettered at the first retry after it, before 30 tries."""
    subscriber.configure(path, statuses=(500,) * 30)
    topic.subscribe(subscription(subscriber, path, ttl_minutes=1))
    _publish_cloudevents(topic, _cloudevents(path, 1))
    [letter] = wait_for(lambda: topic.dead_letters(path), timeout=10)
    assert letter["deadletterreason"] == "TimeToLiveExceeded"
    assert 1 <= letter["deliveryattempts"] < 30


@pytest.mark.parametrize("status", [400, 413])
def test_no_retry_after_a_bad_request_or_too_large(
    topic: LocalTopic, subscriber: Subscriber, path: str, status: int
) -> None:
    """400 and 413 are never retried: one attempt, then the dead-letter store."""
    subscriber.configure(path, statuses=(status,))
    topic.subscribe(subscription(subscriber, path))
    _publish_cloudevents(topic, _cloudevents(path, 1))
    [letter] = wait_for(lambda: topic.dead_letters(path))
    assert letter["deadletterreason"].startswith("UndeliverableDueToHttp") and letter["deliveryattempts"] == 1
    assert len(subscriber.arrivals(path)) == 1


def test_batches_respect_max_events_and_preferred_size(topic: LocalTopic, subscriber: Subscriber, path: str) -> None:
    """maxEventsPerBatch 10 and 1 KB preferred: every request is a batch array within both limits, none lost."""
    topic.subscribe(subscription(subscriber, path, batch=10, kb=1))
    events = _cloudevents(path, 30, pad=150)
    _publish_cloudevents(topic, events)
    arrivals = wait_for(
        lambda: sum(len(a.events) for a in subscriber.arrivals(path)) == 30 and subscriber.arrivals(path)
    )
    assert sorted(e["id"] for a in arrivals for e in a.events) == sorted(e["id"] for e in events)
    assert all(len(a.events) <= 10 and (a.size <= 1024 or len(a.events) == 1) for a in arrivals)
    assert any(len(a.events) > 1 for a in arrivals)
    assert {a.headers["Content-Type"] for a in arrivals} == {"application/cloudevents-batch+json; charset=utf-8"}


def test_admin_api_shows_subscriptions_and_dead_letters(topic: LocalTopic, subscriber: Subscriber, path: str) -> None:
    """GET /admin/subscriptions/{name}/deadletters serves what the in-process accessor sees."""
    subscriber.configure(path, statuses=(400,))
    topic.subscribe(subscription(subscriber, path))
    _publish_cloudevents(topic, _cloudevents(path, 1))
    wait_for(lambda: topic.dead_letters(path))
    base = topic.endpoint.removesuffix("/api/events")
    with urllib.request.urlopen(f"{base}/admin/subscriptions/{path}/deadletters", timeout=10) as response:  # noqa: S310
        assert json.loads(response.read()) == topic.dead_letters(path)
    with urllib.request.urlopen(f"{base}/admin/health", timeout=10) as response:  # noqa: S310
        names = [s["name"] for s in json.loads(response.read())["subscriptions"]]
    assert path in names
