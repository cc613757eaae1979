"""Unit-test fixtures: the app's real services over in-memory storage, a scripted provider and a clock
that moves only when told (tests/fakes.py). Nothing here starts a process or opens a socket."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

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


def sms(message_id: str, to: str = "+14255550100", text: str | None = None, **extra: Any) -> bytes:
    body = {"id": message_id, "channel": "sms", "to": to, "content": {"text": text or f"code for {message_id}"}}
    return json.dumps({**body, **extra}).encode()


def email(message_id: str, to: str = "ann@example.com", **extra: Any) -> bytes:
    body = {"id": message_id, "channel": "email", "to": to, "content": {"subject": "Hi", "text": f"id {message_id}"}}
    return json.dumps({**body, **extra}).encode()


def whatsapp(message_id: str, to: str = "+14255550100", **extra: Any) -> bytes:
    body = {"id": message_id, "channel": "whatsapp", "to": to, "content": {"text": f"wa {message_id}"}}
    return json.dumps({**body, **extra}).encode()


async def deliver(svc: Services, body: bytes | str, dequeue_count: int = 1) -> Outcome:
    """One delivery of a queue message to the send recipe."""
    raw = body.encode() if isinstance(body, str) else body
    return await svc.sending.handle(QueueDelivery(raw, "queue-message", dequeue_count))
