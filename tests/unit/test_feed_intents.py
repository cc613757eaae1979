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
from shared.schema import FEED_COLUMNS, LedgerRow, OutboxRow, ledger_row_key
from shared.services import outbox as outbox_module
from shared.services.due import DueIndex
from shared.services.outbox import FEED_PARTITION, PUBLISH_BATCH, Outbox
from tests.fakes import FakeClock, MemoryTable


class Topic:
    """A publisher that records what it is given, or fails while `down`."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.sizes: list[int] = []  # events per publish request
        self.down = False

    async def publish(self, events: Sequence[str]) -> None:
        if self.down:
            raise TransientError("topic answered 503")
        self.sizes.append(len(events))
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
    stored, _ = messages.rows[("m", ledger_row_key("m"))]
    assert sorted(LedgerRow.from_entity(stored).feed_events) == [1, 2]  # the history, on the row itself
    assert [rk for (pk, rk) in messages.rows if pk == "m"] == [ledger_row_key("m")]  # and no row beside it


async def test_changes_committed_within_the_linger_go_out_in_one_publish(
    tables: tuple[MemoryTable, MemoryTable], process: Starter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publish costs about the same whatever its size, so the flusher waits a moment for a batch."""
    monkeypatch.setattr(outbox_module, "PUBLISH_LINGER_S", 1.0)  # far longer than the ten changes take
    app = process()
    for i in range(10):
        await app.accept(f"m{i}")
        await asyncio.sleep(0)  # the flusher runs between changes, as under steady traffic
    await app.outbox.published()
    assert app.topic.sizes == [10]
    assert sorted(e["id"] for e in app.topic.events) == sorted(f"m{i}:1" for i in range(10))


async def test_a_full_batch_is_published_without_waiting_for_the_linger(
    tables: tuple[MemoryTable, MemoryTable], process: Starter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "PUBLISH_LINGER_S", 30.0)  # the wait below would time out on it
    app = process()
    for i in range(PUBLISH_BATCH):
        await app.accept(f"m{i}")
    await asyncio.wait_for(app.outbox.published(), 5)
    assert app.topic.sizes == [PUBLISH_BATCH]


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


async def test_changes_past_the_rows_columns_are_rows_beside_it_and_the_history_reads_in_order(
    tables: tuple[MemoryTable, MemoryTable], process: Starter
) -> None:
    """A message with more changes than its ledger row has feed columns for (operator replays of a
    long-failing message): the rest are outbox rows in its partition, and a sweep republishes all, in order."""
    messages = tables[0]
    app = process()
    await app.accept("m")
    statuses = [Status.SENDING, Status.ACCEPTED] * ((FEED_COLUMNS + 5) // 2)
    for status in statuses:
        await app.move("m", status)
    await app.outbox.drain()
    last = 1 + len(statuses)
    assert [e["data"]["sequence"] for e in app.topic.events] == list(range(1, last + 1))
    stored, _ = messages.rows[("m", ledger_row_key("m"))]
    assert sorted(LedgerRow.from_entity(stored).feed_events) == list(range(1, FEED_COLUMNS + 1))
    apart = sorted(rk for (pk, rk) in messages.rows if pk == "m" and rk != ledger_row_key("m"))
    assert apart == [OutboxRow("m", n, "").keys[1] for n in range(FEED_COLUMNS + 1, last + 1)]
    app.topic.events.clear()
    await app.outbox.intend("m", keep=True)  # as a crash would leave it
    app.clock.advance(minutes=5)
    assert await app.outbox.sweep(app.clock(), 100) == last
    assert [e["data"]["sequence"] for e in app.topic.events] == list(range(1, last + 1))


async def test_a_rejected_request_replaced_by_a_valid_one_keeps_its_first_event(
    tables: tuple[MemoryTable, MemoryTable], process: Starter
) -> None:
    """The valid request replaces the rejected row whole; the Rejected change it reported stays in the
    message's feed history (a replay still tells subscribers what they were told)."""
    app = process()
    rejected = LedgerRow(message_id="m", status=Status.ACCEPTED, channel_name="sms")
    await app.ledger.record_rejected(rejected.moved_to(Status.REJECTED, iso(app.clock())))
    await app.accept("m")
    await app.outbox.drain()
    row = await app.ledger.get("m")
    assert row is not None and row.status == Status.ACCEPTED and row.feed_sequence == 2
    assert [json.loads(row.feed_events[n])["data"]["status"] for n in (1, 2)] == ["Rejected", "Accepted"]


async def test_an_event_too_large_for_a_column_is_a_row_beside_it_and_still_published(
    tables: tuple[MemoryTable, MemoryTable], process: Starter
) -> None:
    """Metadata that JSON escapes to many times its length (emoji): the event goes apart, in order."""
    messages = tables[0]
    app = process()
    metadata = json.dumps({f"key{i}": "😀" * 256 for i in range(10)})
    row = LedgerRow(message_id="big", status=Status.ACCEPTED, channel_name="sms", metadata=metadata)
    await app.ledger.accept(row.moved_to(Status.ACCEPTED, iso(app.clock())), "{}")
    await app.move("big", Status.SENDING)
    await app.outbox.drain()
    assert [e["data"]["metadata"]["key0"] for e in app.topic.events] == ["😀" * 256] * 2
    stored, _ = messages.rows[("big", ledger_row_key("big"))]
    assert LedgerRow.from_entity(stored).feed_events == {}
    assert sorted(rk for (pk, rk) in messages.rows if pk == "big") == [
        *(OutboxRow("big", n, "").keys[1] for n in (1, 2)),
        ledger_row_key("big"),
    ]
    app.topic.events.clear()
    await app.outbox.intend("big", keep=True)
    app.clock.advance(minutes=5)
    assert await app.outbox.sweep(app.clock(), 100) == 2
    assert [e["data"]["sequence"] for e in app.topic.events] == [1, 2]
