"""The pause switch's cache, against real Azurite: one read per expiry, and this instance's own
changes seen at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.data.tables.aio import TableServiceClient

from shared.adapters.tables import Entity, TableStore
from shared.services.audit import AuditLog
from shared.services.control import ControlService
from tests.integration.conftest import new_table


class CountingStore(TableStore):
    """The real store, counting its queries."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.queries = 0

    def query(
        self, query_filter: str, parameters: Mapping[str, Any] | None = None, select: list[str] | None = None
    ) -> AsyncIterator[Entity]:
        self.queries += 1
        return super().query(query_filter, parameters, select)


class Ticks:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def tables(table_service: TableServiceClient) -> tuple[CountingStore, TableStore]:
    return await new_table(table_service, "control", CountingStore), await new_table(table_service, "audit")


async def test_callers_of_an_expired_cache_share_one_read(tables: tuple[CountingStore, TableStore]) -> None:
    store, audit = tables
    ticks = Ticks()
    control = ControlService(store, AuditLog(audit), cache_seconds=1.0, clock=ticks)
    assert not any(await asyncio.gather(*(control.is_paused("sms", "+18005550100") for _ in range(24))))
    assert store.queries == 1
    ticks.now = 0.5
    await control.is_paused("sms", "+18005550100")
    assert store.queries == 1  # still fresh
    ticks.now = 1.5
    await asyncio.gather(*(control.is_paused("sms", "+18005550100") for _ in range(24)))
    assert store.queries == 2


async def test_a_pause_made_here_is_seen_at_once(tables: tuple[CountingStore, TableStore]) -> None:
    store, audit = tables
    control = ControlService(store, AuditLog(audit), cache_seconds=60.0, clock=Ticks())
    assert not await control.is_paused("sms", "+18005550100")
    now = datetime.now(UTC)
    await control.pause("sms", actor="test", reason="incident", now=now)
    assert await control.is_paused("sms", "+18005550100")
    await control.resume("sms", actor="test", reason="over", now=now)
    assert not await control.is_paused("sms", "+18005550100")


async def test_a_pause_during_a_read_is_not_hidden_by_it(tables: tuple[CountingStore, TableStore]) -> None:
    store, audit = tables
    control = ControlService(store, AuditLog(audit), cache_seconds=60.0, clock=Ticks())
    reading = asyncio.ensure_future(control.is_paused("email", "noreply@contoso.example"))
    await asyncio.sleep(0)  # the read is in flight
    await control.pause("email", actor="test", reason="incident", now=datetime.now(UTC))
    await reading  # may or may not include the pause: it started before it
    assert await control.is_paused("email", "noreply@contoso.example")


async def test_a_failed_read_reaches_every_caller_and_the_next_call_reads_again(
    tables: tuple[CountingStore, TableStore], table_service: TableServiceClient
) -> None:
    _, audit = tables
    missing = CountingStore(table_service.get_table_client(f"missing{uuid.uuid4().hex[:10]}"))  # never created
    control = ControlService(missing, AuditLog(audit), cache_seconds=1.0, clock=Ticks())
    results = await asyncio.gather(*(control.is_paused("sms", "x") for _ in range(5)), return_exceptions=True)
    assert all(isinstance(result, Exception) for result in results)
    assert missing.queries == 1
    await missing.create_if_missing()
    assert not await control.is_paused("sms", "x")
    assert missing.queries == 2
