"""The status feed's intents (shared/services/outbox.py): each process deletes its own intent once every
change under it is published, and keeps it whenever the sweep may still have work: a failed publish, a
ledger write that may have committed, another process's unpublished change to the same message."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import pytest

from shared.clock import iso
from shared.errors import ContactMessagesError, TransientError
from shared.ledger import Ledger
from shared.models import Status
from shared.schema import LedgerRow
from shared.services.due import DueIndex
from shared.services.outbox import FEED_PARTITION, Outbox
from tests.fakes import FakeClock, MemoryTable


class Topic:
    """A publisher that records what it is given, or fails while `down`."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.down = False

    async def publish(self, events: Sequence[str]) -> None:
        if self.down:
            raise TransientError("topic answered 503")
        self.events.extend(json.loads(event) for event in events)

    async def close(self) -> None:
        return None


class Process:
    """One app instance: its own outbox and ledger over the shared tables."""

    def __init__(self, messages: MemoryTable, due: MemoryTable, clock: FakeClock) -> None:
        self.topic = Topic()
        self.outbox = Outbox(messages, DueIndex(due, FEED_PARTITION), self.topic, clock, "")
        self.ledger = Ledger(messages, b"k", hooks=[self.outbox])
        self.clock = clock

    async def accept(self, message_id: str) -> LedgerRow:
        row = LedgerRow(message_id=message_id, status=Status.ACCEPTED, channel_name="sms", created_at=iso(self.clock()))
        stored, _ = await self.ledger.accept(row.moved_to(Status.ACCEPTED, iso(self.clock())), "{}")
        return stored

    async def move(self, message_id: str, status: Status) -> LedgerRow:
        result = await self.ledger.change(message_id, lambda row: row.moved_to(status, iso(self.clock())))
        assert result is not None
        return result


@pytest.fixture
def tables() -> tuple[MemoryTable, MemoryTable]:
    return MemoryTable("messages"), MemoryTable("due")


class Starter(Protocol):
    def __call__(self, clock: FakeClock | None = None) -> Process: ...


@pytest.fixture
async def process(tables: tuple[MemoryTable, MemoryTable]) -> AsyncIterator[Starter]:
    """Start app instances on the shared tables; each is closed (its outbox's timers too) at the end."""
    started: list[Process] = []

    def start(clock: FakeClock | None = None) -> Process:
        started.append(Process(*tables, clock or FakeClock()))
        return started[-1]

    yield start
    for app in started:
        app.topic.down = False
        await app.outbox.close()


def intents(due: MemoryTable, message_id: str) -> list[dict[str, Any]]:
    return [e for (pk, _), (e, _) in due.rows.items() if pk == FEED_PARTITION and e["MessageId"] == message_id]


async def test_a_published_message_leaves_no_intent_and_its_history_stays(
    tables: tuple[MemoryTable, MemoryTable], process: Starter
) -> None:
    messages, due = tables
    app = process()
    await app.accept("m")
    await app.move("m", Status.SENDING)
    assert len(intents(due, "m")) == 1  # written before the writes, once for the minute
    await app.outbox.drain()
    assert [e["id"] for e in app.topic.events] == ["m:1", "m:2"]
    assert intents(due, "m") == []
    assert sum(1 for (pk, rk) in messages.rows if pk == "m" and rk.startswith("feed|")) == 2


async def test_intents_of_a_past_minute_retire_after_a_publish_without_a_drain(
    tables: tuple[MemoryTable, MemoryTable], process: Starter
) -> None:
    """In steady traffic no one drains: the next publish after the minute ends retires the old intents."""
    due = tables[1]
    app = process()
    clock = app.clock
    await app.accept("old")
    await app.outbox.published()
    assert len(intents(due, "old")) == 1  # its minute is not over: a later change may still come
    clock.advance(minutes=1)
    await app.accept("new")
    await app.outbox.published()
    assert intents(due, "old") == [] and len(intents(due, "new")) == 1


async def test_a_failed_publish_keeps_the_intent_for_the_sweep(
    tables: tuple[MemoryTable, MemoryTable], process: Starter
) -> None:
    due = tables[1]
    app = process()
    clock = app.clock
    app.topic.down = True
    await app.accept("m")
    await app.outbox.drain()
    clock.advance(minutes=5)
    await app.outbox.drain()
    assert len(intents(due, "m")) == 1
    app.topic.down = False
    assert await app.outbox.sweep(clock(), 100) == 1
    assert intents(due, "m") == [] and [e["id"] for e in app.topic.events] == ["m:1"]


async def test_a_write_that_may_have_committed_keeps_its_intent(
    tables: tuple[MemoryTable, MemoryTable], process: Starter
) -> None:
    """A timeout after the transaction was sent: the row may exist unpublished, so the sweep must look."""
    messages, due = tables
    app = process()
    clock = app.clock
    await app.accept("m")
    await app.outbox.drain()
    assert intents(due, "m") == []

    async def times_out(op: str) -> None:
        if op in {"transact", "update"}:
            raise TransientError("storage timed out")

    messages.before = times_out
    with pytest.raises(ContactMessagesError):
        await app.move("m", Status.SENDING)
    messages.before = None
    clock.advance(minutes=5)
    await app.outbox.drain()
    assert len(intents(due, "m")) == 1


async def test_a_write_that_lost_its_race_lets_the_intent_retire(
    tables: tuple[MemoryTable, MemoryTable], process: Starter
) -> None:
    """A 412 is the service saying nothing was written: the retry's change is the only one to publish."""
    due = tables[1]
    app, other = process(), process()
    row = await app.accept("m")
    await other.move("m", Status.SENDING)  # the row moves on under `app`'s feet
    await app.ledger.change("m", lambda r: r.moved_to(Status.SENT, iso(app.clock())), start=row)
    await app.outbox.drain()
    await other.outbox.drain()
    assert intents(due, "m") == []
    assert sorted(e["id"] for e in app.topic.events + other.topic.events) == ["m:1", "m:2", "m:3"]


async def test_one_process_retiring_its_intent_never_hides_another_process_change(
    tables: tuple[MemoryTable, MemoryTable], process: Starter
) -> None:
    """Two instances change one message in the same minute; the second cannot publish. The first's
    retirement must leave the second's intent, or a crash of the second would lose its change."""
    due = tables[1]
    clock = FakeClock()
    sender, recorder = process(clock), process(clock)
    await sender.accept("m")
    recorder.topic.down = True
    await recorder.move("m", Status.SENDING)
    await sender.outbox.drain()
    await recorder.outbox.drain()
    assert len(intents(due, "m")) == 1  # the recorder's
    clock.advance(minutes=3)
    recorder.topic.down = False
    assert await recorder.outbox.sweep(clock(), 100) == 2  # the partition's whole feed, same ids


async def test_a_change_after_the_intent_retired_writes_it_again(
    tables: tuple[MemoryTable, MemoryTable], process: Starter
) -> None:
    due = tables[1]
    app = process()
    await app.accept("m")
    await app.outbox.drain()
    assert intents(due, "m") == []
    app.outbox.committed = lambda rows: None  # type: ignore[method-assign]  # dies before publishing
    await app.move("m", Status.SENDING)
    assert len(intents(due, "m")) == 1


async def test_a_change_while_its_intent_is_being_deleted_writes_it_after_the_delete(
    tables: tuple[MemoryTable, MemoryTable], process: Starter
) -> None:
    """A drain deletes the intent of the current minute; a change in that minute must not write the
    intent again before the delete lands, or the delete would take the new change's intent with it."""
    due = tables[1]
    app = process()
    await app.accept("m")
    deleting, release = asyncio.Event(), asyncio.Event()

    async def slow_delete(op: str) -> None:
        if op == "delete":
            deleting.set()
            await release.wait()

    due.before = slow_delete
    drain = asyncio.create_task(app.outbox.drain())
    await deleting.wait()
    move = asyncio.create_task(app.move("m", Status.SENDING))
    await asyncio.sleep(0.01)
    release.set()
    await drain
    await move
    assert len(intents(due, "m")) == 1
