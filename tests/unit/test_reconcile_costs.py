"""What reconciliation costs in storage requests: handled due entries leave in batches, a closed report
deadline is written from the row just read, and a deadline that is only extended is not counted yet."""

from __future__ import annotations

from datetime import timedelta

from shared.adapters.queues import RawMessage
from shared.models import Status
from shared.runtime import Services
from shared.services.due import DueIndex, DueKind
from shared.services.outcomes import Outcome
from shared.services.reconcile import Summary
from tests.bodies import email
from tests.fakes import FakeClock, MemoryStorage, MemoryTable, ScriptedProvider
from tests.unit.conftest import deliver


async def _nothing(count: int, visibility_seconds: int = 30) -> list[RawMessage]:
    return []


async def _reconcile(svc: Services, storage: MemoryStorage) -> Summary:
    for name in (svc.settings.poison_queue, svc.settings.priority_poison_queue):
        storage.queue(name).receive = _nothing  # type: ignore[method-assign]
    return await svc.reconcile.run()


def _counting(table: MemoryTable) -> list[str]:
    seen: list[str] = []

    async def before(op: str) -> None:
        seen.append(op)

    table.before = before
    return seen


async def test_handled_entries_leave_a_hundred_per_transaction(clock: FakeClock) -> None:
    table = MemoryTable("due")
    index = DueIndex(table)
    for i in range(250):
        await index.add(f"m-{i}", DueKind.SLA, clock() - timedelta(seconds=i))
    entries = await index.due(clock(), limit=1000)
    assert len(entries) == 250
    seen = _counting(table)
    await index.remove_all(entries)
    assert seen == ["transact", "transact", "transact"]
    assert await index.due(clock() + timedelta(days=1), limit=1000) == []


async def test_a_batch_with_an_entry_already_gone_is_removed_one_by_one(clock: FakeClock) -> None:
    """Another run removed one of them: the service refuses the whole batch, so its entries go singly."""
    table = MemoryTable("due")
    index = DueIndex(table)
    for i in range(5):
        await index.add(f"g-{i}", DueKind.STUCK, clock())
    entries = await index.due(clock(), limit=10)
    await index.remove(entries[2])
    seen = _counting(table)
    await index.remove_all(entries)
    assert seen.count("transact") == 1 and seen.count("delete") == 5
    assert await index.due(clock(), limit=10) == []


async def test_an_email_still_running_is_extended_and_counted_only_when_its_deadline_closes(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider, clock: FakeClock
) -> None:
    assert await deliver(svc, email("run-1")) == Outcome.SENT
    provider.email_statuses = ["Running"]
    clock.advance(minutes=61)
    first = await _reconcile(svc, storage)
    assert first.actions["extended"] == 1 and sum(first.cohort.values()) == 0
    provider.email_statuses = ["Failed"]
    clock.advance(minutes=61)
    second = await _reconcile(svc, storage)
    assert second.actions["failed"] == 1
    assert dict(second.cohort) == {"email|Failed": 1}
    row = await svc.ledger.get("run-1")
    assert row is not None and row.status == Status.FAILED
