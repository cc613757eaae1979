"""The status feed (issue 17) through its outbox: every ledger transition published to the local Event
Grid topic and delivered to a webhook subscriber, after the commit, exactly the ledger's history after
dedupe by event id; a publish outage loses nothing (the reconcile sweep republishes)."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest

from devstack.acs import AcsEmulator
from devstack.azurite import Azurite
from devstack.eventgrid import DEFAULT_KEY, LocalTopic, RetryPolicy, Subscription, TopicSettings
from shared.models import Status
from shared.runtime import Services, build_services
from shared.schema import OUTBOX_ROWS_FILTER, OutboxRow
from shared.services.decoding import QueueDelivery
from shared.services.outbox import FEED_PARTITION
from shared.services.outcomes import Outcome
from shared.settings import load_settings
from tests.bodies import sms
from tests.devstack.eventgrid.subscriber import Subscriber
from tests.integration.conftest import Clock, app_env, eventually

_paths = itertools.count(1)


@pytest.fixture(scope="module")
def feed_subscriber() -> Iterator[Subscriber]:
    instance = Subscriber().start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def feed_topic() -> Iterator[LocalTopic]:
    with LocalTopic(TopicSettings()) as instance:
        yield instance


@pytest.fixture
def feed_path(feed_topic: LocalTopic, feed_subscriber: Subscriber) -> Iterator[str]:
    path = f"feed-{next(_paths)}"
    retry = RetryPolicy(max_delivery_attempts=30, event_ttl_minutes=1440, time_scale=0.002)
    feed_topic.subscribe(Subscription(path, feed_subscriber.url(path), max_events_per_batch=10, retry=retry))
    yield path
    feed_topic.unsubscribe(path)
    feed_topic.clear_faults()


@pytest.fixture
async def fed(azurite: Azurite, acs: AcsEmulator, clock: Clock, feed_topic: LocalTopic) -> AsyncIterator[Services]:
    acs.reset()
    acs.clear_faults()
    env = app_env(azurite, acs, FEED_TOPIC_ENDPOINT=feed_topic.endpoint, FEED_TOPIC_KEY=DEFAULT_KEY)
    services = await build_services(load_settings(env), clock=clock)
    yield services
    await services.close()


def _received(subscriber: Subscriber, path: str, message_id: str) -> list[dict[str, Any]]:
    """The subscriber's events for one message, deduplicated by id, in sequence order."""
    unique = {e["id"]: e for e in subscriber.delivered(path) if e["data"]["messageId"] == message_id}
    return sorted(unique.values(), key=lambda e: int(e["data"]["sequence"]))


async def _intents(svc: Services, message_id: str) -> list[dict[str, Any]]:
    """The message's feed intents: its changes not yet known to be published."""
    table = svc.storage.table(svc.names.due)
    rows = table.query("PartitionKey eq @pk", {"pk": FEED_PARTITION})
    return [r async for r in rows if r["MessageId"] == message_id]


async def _feed_history(svc: Services, message_id: str) -> list[int]:
    """The sequences of the message's stored feed events: its ledger row's columns, and rows beside it."""
    row = await svc.ledger.get(message_id)
    table = svc.storage.table(svc.names.messages)
    apart = [r async for r in table.query(OUTBOX_ROWS_FILTER, {"pk": message_id})]
    return sorted([*(row.feed_events if row else ()), *(OutboxRow.from_entity(r).sequence for r in apart)])


async def _sent_and_delivered(svc: Services, acs: AcsEmulator, message_id: str) -> None:
    body = sms(message_id, metadata={"orderId": "42"}, correlationId="crm-7")
    assert await svc.sending.handle(QueueDelivery(body, uuid.uuid4().hex, 1)) == Outcome.SENT
    row = await svc.ledger.get(message_id)
    assert row is not None and row.provider_message_id
    report = _report(acs, row.provider_message_id, message_id)
    assert await svc.events.record(report) is not None


def _report(acs: AcsEmulator, provider_id: str, message_id: str) -> dict[str, Any]:
    from bench import seed
    from shared.clock import utc_now

    return seed.report(message_id, provider_id, utc_now())


async def test_every_transition_reaches_a_subscriber_in_sequence_after_the_commit(
    fed: Services, acs: AcsEmulator, feed_subscriber: Subscriber, feed_path: str
) -> None:
    """Accepted, Sending, Sent, Delivered: sequences 1..4, ids `<id>:<seq>`, masked recipient and the
    request's metadata; once published, no outbox row is left in the message's partition."""
    await _sent_and_delivered(fed, acs, "feed-one")
    assert fed.feed is not None
    await fed.feed.drain()
    await eventually(lambda: _async_len(_received(feed_subscriber, feed_path, "feed-one"), 4))
    events = _received(feed_subscriber, feed_path, "feed-one")
    assert [e["data"]["status"] for e in events] == ["Accepted", "Sending", "Sent", "Delivered"]
    assert [e["id"] for e in events] == [f"feed-one:{n}" for n in range(1, 5)]
    assert [e["data"]["previousStatus"] for e in events] == [None, "Accepted", "Sending", "Sent"]
    assert all(e["data"]["metadata"] == {"orderId": "42"} and e["data"]["correlationId"] == "crm-7" for e in events)
    assert all("*" in e["data"]["recipientMasked"] and "5550100" not in json.dumps(e) for e in events)
    row = await fed.ledger.get("feed-one")
    assert row is not None and row.status == Status.DELIVERED and row.feed_sequence == 4
    assert await _intents(fed, "feed-one") == []  # published: the drain retired its intent
    assert len(await _feed_history(fed, "feed-one")) == 4  # kept for replays


async def test_a_publish_outage_loses_nothing_and_never_fails_the_send(
    fed: Services, acs: AcsEmulator, clock: Clock, feed_topic: LocalTopic, feed_subscriber: Subscriber, feed_path: str
) -> None:
    """The topic answers 503 to every publish: the send and the report are recorded as usual and the
    events wait in the outbox; after the outage the reconcile sweep publishes them."""
    feed_topic.fail_publishes(503, 1000)
    await _sent_and_delivered(fed, acs, "feed-outage")
    assert fed.feed is not None
    await fed.feed.drain()
    assert len(await _intents(fed, "feed-outage")) == 1 and len(await _feed_history(fed, "feed-outage")) == 4
    assert _received(feed_subscriber, feed_path, "feed-outage") == []
    status = await fed.feed.status()
    assert status.pending_messages >= 1 and status.last_error is not None and "503" in status.last_error.reason
    feed_topic.clear_faults()
    clock.advance(minutes=3)
    summary = await fed.reconcile.run()
    assert summary.actions["feed-republished"] == 4
    await eventually(lambda: _async_len(_received(feed_subscriber, feed_path, "feed-outage"), 4))
    assert await _intents(fed, "feed-outage") == []
    statuses = [e["data"]["status"] for e in _received(feed_subscriber, feed_path, "feed-outage")]
    assert statuses == ["Accepted", "Sending", "Sent", "Delivered"]


async def test_a_crash_between_commit_and_publish_is_republished_once_with_the_same_ids(
    fed: Services, acs: AcsEmulator, clock: Clock, feed_subscriber: Subscriber, feed_path: str
) -> None:
    """The process dies after the transaction and before the publish (modelled by dropping what was
    handed to the publisher): the intent written first lets the sweep find the rows a minute later."""
    assert fed.feed is not None
    fed.feed.committed = lambda rows: None  # type: ignore[method-assign]
    await _sent_and_delivered(fed, acs, "feed-crash")
    await fed.feed.drain()
    assert len(await _intents(fed, "feed-crash")) == 1 and len(await _feed_history(fed, "feed-crash")) == 4
    clock.advance(seconds=30)
    assert (await fed.reconcile.run()).actions["feed-republished"] == 0  # not due yet: younger than a minute
    clock.advance(minutes=3)
    assert (await fed.reconcile.run()).actions["feed-republished"] == 4
    await eventually(lambda: _async_len(_received(feed_subscriber, feed_path, "feed-crash"), 4))
    ids = [e["id"] for e in _received(feed_subscriber, feed_path, "feed-crash")]
    assert ids == [f"feed-crash:{n}" for n in range(1, 5)]
    assert await _intents(fed, "feed-crash") == []
    assert (await fed.reconcile.run()).actions["feed-republished"] == 0


async def test_a_replay_republishes_a_window_with_the_same_ids(
    fed: Services, acs: AcsEmulator, clock: Clock, feed_subscriber: Subscriber, feed_path: str
) -> None:
    """`feed replay --since`: a subscriber that lost data gets the window again, same ids and content."""
    await _sent_and_delivered(fed, acs, "feed-replay")
    assert fed.feed is not None
    await fed.feed.drain()
    await eventually(lambda: _async_len(_received(feed_subscriber, feed_path, "feed-replay"), 4))
    first = _received(feed_subscriber, feed_path, "feed-replay")
    since = clock() - timedelta(minutes=5)
    assert await fed.feed.replay(since) >= 4
    await eventually(
        lambda: _async_len([e for e in feed_subscriber.delivered(feed_path) if e["id"] == "feed-replay:1"], 2)
    )
    again = [e for e in feed_subscriber.delivered(feed_path) if e["data"]["messageId"] == "feed-replay"]
    assert len(again) >= 8 and {e["id"] for e in again} == {e["id"] for e in first}
    by_id = {e["id"]: e for e in first}
    assert all(e["data"] == by_id[e["id"]]["data"] for e in again)
    assert await fed.feed.replay(clock() + timedelta(minutes=1)) == 0


async def test_without_a_topic_nothing_is_written_for_the_feed(svc: Services, acs: AcsEmulator) -> None:
    """Opt-in: with no topic configured, a message's partition holds no outbox rows and no sequence."""
    await _sent_and_delivered(svc, acs, "no-feed")
    assert svc.feed is None
    assert await _feed_history(svc, "no-feed") == [] and await _intents(svc, "no-feed") == []
    row = await svc.ledger.get("no-feed")
    assert row is not None and row.feed_sequence == 0 and row.get("FeedSequence") is None


async def _async_len(items: list[Any], expected: int) -> bool:
    await asyncio.sleep(0)
    return len(items) >= expected
