"""Fixtures for service-level integration tests: real Azurite, the real ACS emulator, real SDK clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from aiohttp import web
from azure.data.tables.aio import TableServiceClient

from devstack.acs import DEFAULT_TOPIC, AcsEmulator
from devstack.azurite import Azurite, free_port
from shared.adapters.tables import TableStore
from shared.runtime import Services, build_services
from shared.settings import load_settings

SMS_SENDER = "+18005550100"
EMAIL_SENDER = "noreply@contoso.example"
WHATSAPP_CHANNEL = "6b36a8e2-0000-4000-8000-000000000001"


@pytest.fixture(scope="session")
def acs() -> Iterator[AcsEmulator]:
    """One ACS emulator for the session, with fast reports."""
    emulator = AcsEmulator(report_delay=0.05, late_delay=0.5).start()
    yield emulator
    emulator.stop()


def app_env(azurite: Azurite, acs: AcsEmulator, **overrides: str) -> dict[str, str]:
    """App settings for one isolated test: its own table prefix and send queue."""
    suffix = uuid.uuid4().hex[:10]
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "ACS_CONNECTION_STRING": acs.connection_string,
        "ACS_RESOURCE_IDS": DEFAULT_TOPIC,
        "SMS_SENDERS": SMS_SENDER,
        "EMAIL_SENDERS": EMAIL_SENDER,
        "WHATSAPP_CHANNELS": WHATSAPP_CHANNEL,
        "RATE_LIMITS": json.dumps({"sms": 60000, "email": 60000, "whatsapp": 60000}),
        "CONSENT_HASH_KEY": "test-key",
        "TABLE_PREFIX": f"t{suffix}",
        "SEND_QUEUE": f"out-{suffix}",
        "RECONCILE_SCHEDULE": "0 0 0 1 1 *",
        "RETENTION_SCHEDULE": "0 0 0 1 1 *",
        **overrides,
    }


class Clock:
    """A settable clock for tests that need time to pass."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


Store = TypeVar("Store", bound=TableStore)


@pytest.fixture
async def table_service(azurite: Azurite) -> AsyncIterator[TableServiceClient]:
    """The session Azurite's table service, for tests of one storage adapter on tables of their own."""
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    yield service
    await service.close()


async def new_table(service: TableServiceClient, prefix: str, store_type: type[Store] = TableStore) -> Store:  # type: ignore[assignment]
    """A freshly created table with a unique name, behind `store_type`."""
    store = store_type(service.get_table_client(f"{prefix}{uuid.uuid4().hex[:12]}"))
    await store.create_if_missing()
    return store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def svc(azurite: Azurite, acs: AcsEmulator, clock: Clock) -> AsyncIterator[Services]:
    """Fresh services on fresh tables and queues, wired to the session Azurite and emulator."""
    acs.reset()
    acs.clear_faults()
    services = await build_services(load_settings(app_env(azurite, acs)), clock=clock)
    yield services
    await services.close()


@pytest.fixture
async def webhook(acs: AcsEmulator) -> AsyncIterator[Callable[[Callable[[dict[str, Any]], Awaitable[Any]]], None]]:
    """An Event Grid receiver in this process; the test chooses the handler for each event."""
    handlers: list[Callable[[dict[str, Any]], Awaitable[Any]]] = []

    async def receive(request: web.Request) -> web.Response:
        body = await request.json()
        for event in body if isinstance(body, list) else [body]:
            await handlers[-1](event)
        return web.Response(status=202)

    async with serving(receive) as port:
        acs.set_webhook(f"http://127.0.0.1:{port}/events")
        yield handlers.append
        acs.set_webhook(None)


@contextlib.asynccontextmanager
async def serving(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[int]:
    """A local HTTP server that hands every request, any method and path, to `handler`; yields its port."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll `check` until it is true, failing after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
