"""Fixtures for the local Event Grid topic: two topics (CloudEvents and Event Grid input schema, HTTP and
HTTPS), one webhook subscriber, and a per-test subscription path so tests never see each other's events."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.acs.models import EventSchema
from devstack.eventgrid import LocalTopic, RetryPolicy, Subscription, TopicSettings
from tests.devstack.eventgrid.subscriber import Subscriber

# Event Grid's schedule (10 s, 30 s, 1 min, ...) at 1/500: 20 ms, 60 ms, 120 ms, 600 ms, ...
TIME_SCALE = 0.002
_names = itertools.count(1)


@pytest.fixture(scope="session")
def subscriber() -> Iterator[Subscriber]:
    instance = Subscriber().start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def dead_letter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dead-letters")


@pytest.fixture(scope="session")
def topic(dead_letter_dir: Path) -> Iterator[LocalTopic]:
    """A CloudEvents topic, HTTP and HTTPS, that also takes bearer tokens."""
    with LocalTopic(TopicSettings(allow_bearer=True), tls_port=0, dead_letter_dir=dead_letter_dir) as instance:
        yield instance


@pytest.fixture(scope="session")
def eventgrid_topic() -> Iterator[LocalTopic]:
    """A topic whose input schema is the Event Grid schema."""
    with LocalTopic(TopicSettings(input_schema=EventSchema.EVENTGRID)) as instance:
        yield instance


@pytest.fixture
def path() -> str:
    """A fresh subscription name, also the subscriber path it delivers to."""
    return f"sub-{next(_names)}"


def subscription(
    subscriber: Subscriber, name: str, *, attempts: int = 30, ttl_minutes: float = 1440, batch: int = 1, kb: int = 64
) -> Subscription:
    retry = RetryPolicy(max_delivery_attempts=attempts, event_ttl_minutes=ttl_minutes, time_scale=TIME_SCALE)
    return Subscription(name, subscriber.url(name), max_events_per_batch=batch, preferred_batch_kb=kb, retry=retry)


@pytest.fixture(autouse=True)
def _forget_subscriptions(request: pytest.FixtureRequest, path: str) -> Iterator[None]:
    """Remove the test's subscription from whichever topic it used, so no retries outlive the test."""
    yield
    for name in ("topic", "eventgrid_topic"):
        if name in request.fixturenames:
            request.getfixturevalue(name).unsubscribe(path)
