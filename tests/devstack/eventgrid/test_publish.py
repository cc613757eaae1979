"""Publishing the status feed through the official SDK client to the local topic, and the topic's answers."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from azure.core.credentials import AccessToken, AzureSasCredential
from azure.eventgrid import generate_sas
from azure.eventgrid.aio import EventGridPublisherClient

from devstack.eventgrid import DEFAULT_KEY, LocalTopic
from shared.adapters.eventgrid import MAX_REQUEST_BYTES, FeedPublisher, request_chunks
from shared.errors import PermanentError, Throttled, TransientError
from shared.feed import StatusChange, cloud_event
from shared.models import Channel, Status
from tests.devstack.acs.conftest import wait_for
from tests.devstack.eventgrid.conftest import subscription
from tests.devstack.eventgrid.subscriber import Subscriber

WRONG_KEY = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXkhIQ=="


def _events(message_id: str, count: int = 3) -> list[dict[str, Any]]:
    statuses = [Status.ACCEPTED, Status.SENDING, Status.SENT, Status.DELIVERED]
    return [
        cloud_event(
            StatusChange.masking(
                "+14255550123",
                message_id=message_id,
                sequence=n,
                status=statuses[n - 1],
                previous_status=statuses[n - 2] if n > 1 else None,
                channel=Channel.SMS,
                changed_at=datetime(2026, 5, 1, tzinfo=UTC) + timedelta(seconds=n),
            )
        )
        for n in range(1, count + 1)
    ]


def _texts(events: list[dict[str, Any]]) -> list[str]:
    """The events as the outbox stores them, and the publisher sends them: JSON texts."""
    return [json.dumps(event) for event in events]


def _without_time(event: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key != "time"}


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class StaticToken:
    """A token credential as the app's managed identity would be, without Azure: records the scopes asked."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    async def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("local-managed-identity-token", int(time.time()) + 3600)

    async def close(self) -> None:
        return None


async def _raw_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def test_key_auth_publish_reaches_the_subscriber(topic: LocalTopic, subscriber: Subscriber, path: str) -> None:
    """FeedPublisher with the topic key sends the CloudEvents; the subscriber gets them unchanged."""
    topic.subscribe(subscription(subscriber, path))
    events = _events(f"key-{path}")
    async with FeedPublisher.with_key(topic.endpoint, DEFAULT_KEY) as publisher:
        await publisher.publish(_texts(events))
    received = wait_for(lambda: len(subscriber.delivered(path)) == 3 and subscriber.delivered(path))
    # the SDK re-serializes `time` (to milliseconds); every other attribute and the data arrive as built
    assert [_without_time(e) for e in sorted(received, key=lambda e: e["id"])] == [_without_time(e) for e in events]
    assert {_instant(e["time"]) for e in received} == {_instant(e["time"]) for e in events}


async def test_token_auth_publish_over_https(
    topic: LocalTopic, subscriber: Subscriber, path: str, tmp_path: Path
) -> None:
    """A token credential is asked for Event Grid's scope and its bearer token is accepted over TLS."""
    assert topic.tls_endpoint is not None and topic.tls_cert_pem is not None
    cert = tmp_path / "topic.pem"
    cert.write_bytes(topic.tls_cert_pem)
    topic.subscribe(subscription(subscriber, path))
    credential = StaticToken()
    async with FeedPublisher(topic.tls_endpoint, credential, connection_verify=str(cert)) as publisher:
        await publisher.publish(_texts(_events(f"token-{path}", 2)))
    wait_for(lambda: len(subscriber.delivered(path)) == 2)
    assert credential.scopes == [("https://eventgrid.azure.net/.default",)]


async def test_sas_token_from_the_sdk_is_accepted(topic: LocalTopic, subscriber: Subscriber, path: str) -> None:
    """A token made by azure.eventgrid.generate_sas from the key publishes; one made from another key does not."""
    topic.subscribe(subscription(subscriber, path))
    expiry = datetime.now(UTC) + timedelta(minutes=5)
    good = AzureSasCredential(generate_sas(topic.endpoint, DEFAULT_KEY, expiry))
    async with EventGridPublisherClient(topic.endpoint, good) as client:
        await client.send(_events(f"sas-{path}", 1))
    wait_for(lambda: len(subscriber.delivered(path)) == 1)
    forged = AzureSasCredential(generate_sas(topic.endpoint, WRONG_KEY, expiry))
    async with FeedPublisher(topic.endpoint, forged) as publisher:
        with pytest.raises(TransientError, match="401"):
            await publisher.publish(_texts(_events(f"sas-{path}", 1)))


async def test_a_wrong_key_is_a_401_shaped_like_event_grids(topic: LocalTopic) -> None:
    """The topic answers 401 with {"error": {code, message, details}}; the adapter makes it transient."""
    status, body = await _raw_post(
        f"{topic.endpoint}?api-version=2018-01-01",
        json.dumps(_events("m")).encode(),
        {"aeg-sas-key": WRONG_KEY, "Content-Type": "application/cloudevents-batch+json; charset=utf-8"},
    )
    assert status == 401
    assert body["error"]["code"] == "Unauthorized" and body["error"]["details"][0]["message"]
    async with FeedPublisher.with_key(topic.endpoint, WRONG_KEY) as publisher:
        with pytest.raises(TransientError, match="401"):
            await publisher.publish(_texts(_events("m")))


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"[{not json", "InputJsonInvalid"),
        (b"[]", "InputJsonInvalid"),
        (b'{"id": "1"}', "InputJsonInvalid"),
        (b'[{"id": "1", "source": "/s", "specversion": "1.0"}]', "MissingRequiredProperty"),
        (b'[{"id": "1", "subject": "s", "eventType": "t", "eventTime": "2026-01-01T00:00:00Z", "data": {}}]', None),
    ],
)
async def test_a_malformed_batch_is_a_400_with_event_grids_error_body(
    topic: LocalTopic, body: bytes, detail: str | None
) -> None:
    """Bad JSON, an empty or non-array body, a missing attribute, or the other schema: 400 BadRequest."""
    status, answer = await _raw_post(
        f"{topic.endpoint}?api-version=2018-01-01",
        body,
        {"aeg-sas-key": DEFAULT_KEY, "Content-Type": "application/cloudevents-batch+json; charset=utf-8"},
    )
    assert (status, answer["error"]["code"]) == (400, "BadRequest")
    assert answer["error"]["message"] and answer["error"]["details"][0]["code"] == (detail or "InputJsonInvalid")


async def test_a_refused_event_is_a_permanent_error(topic: LocalTopic) -> None:
    """An event the topic refuses (specversion 0.3) is a PermanentError: resending cannot help."""
    event = {**_events("m", 1)[0], "specversion": "0.3"}
    async with FeedPublisher.with_key(topic.endpoint, DEFAULT_KEY) as publisher:
        with pytest.raises(PermanentError, match="400"):
            await publisher.publish(_texts([event]))


@pytest.mark.parametrize(("status", "error"), [(503, TransientError), (500, TransientError), (429, Throttled)])
async def test_an_outage_is_transient(topic: LocalTopic, status: int, error: type[Exception]) -> None:
    """5xx and 429 from the topic (after the SDK's own retries) are transient, for the outbox to retry."""
    topic.fail_publishes(status, 5)
    try:
        async with FeedPublisher.with_key(topic.endpoint, DEFAULT_KEY, retry_backoff_factor=0.01) as publisher:
            with pytest.raises(error):
                await publisher.publish(_texts(_events("m", 1)))
    finally:
        topic.clear_faults()


async def test_an_unreachable_topic_is_transient() -> None:
    """Nothing listening: a TransientError, not a crash."""
    async with FeedPublisher.with_key("http://127.0.0.1:9/api/events", DEFAULT_KEY, retry_total=0) as publisher:
        with pytest.raises(TransientError, match="unreachable"):
            await publisher.publish(_texts(_events("m", 1)))


async def test_a_large_batch_is_split_under_the_request_limit(
    topic: LocalTopic, subscriber: Subscriber, path: str
) -> None:
    """Events totalling over 1 MB go in several requests, each within the limit, and all arrive."""
    topic.subscribe(subscription(subscriber, path))
    events = _events(f"big-{path}", 4)
    for event in events:
        event["data"]["metadata"] = {"note": "x" * 300_000}
    chunks = list(request_chunks(_texts(events)))
    assert len(chunks) > 1 and [e for chunk in chunks for e in chunk] == _texts(events)
    assert all(len(("[" + ",".join(chunk) + "]").encode()) <= MAX_REQUEST_BYTES for chunk in chunks)
    async with FeedPublisher.with_key(topic.endpoint, DEFAULT_KEY) as publisher:
        await publisher.publish(_texts(events))
    wait_for(lambda: len(subscriber.delivered(path)) == 4)
