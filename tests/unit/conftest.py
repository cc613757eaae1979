"""Unit-test fixtures: the app's real services over in-memory storage, a scripted provider and a clock
that moves only when told (tests/fakes.py). Nothing here starts a process or opens a socket."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.runtime import Services
from shared.services.decoding import QueueDelivery
from shared.services.outcomes import Outcome
from tests.fakes import FakeClock, MemoryStorage, ScriptedProvider, memory_services


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def svc(storage: MemoryStorage, provider: ScriptedProvider, clock: FakeClock) -> AsyncIterator[Services]:
    services = await memory_services(storage, provider, clock)
    yield services
    await services.close()


async def deliver(svc: Services, body: bytes | str, dequeue_count: int = 1) -> Outcome:
    """One delivery of a queue message to the send recipe."""
    raw = body.encode() if isinstance(body, str) else body
    return await svc.sending.handle(QueueDelivery(raw, "queue-message", dequeue_count))
