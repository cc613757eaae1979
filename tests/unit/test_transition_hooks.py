"""The ledger's transition hooks: each stamps the row in turn, writes its intent before the write, and is
told after the commit; a write that does not commit tells no hook."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from shared.errors import EtagMismatch
from shared.ledger import Ledger
from shared.models import Status
from shared.schema import LedgerRow, OutboxRow
from tests.fakes import MemoryTable


class Recorder:
    """A hook that records what it is asked, and stamps a column to show the order of stamping."""

    def __init__(self, name: str, calls: list[str], table: MemoryTable) -> None:
        self.name, self.calls, self.table = name, calls, table

    def stamp(self, before: LedgerRow | None, after: LedgerRow) -> tuple[LedgerRow, list[OutboxRow]]:
        self.calls.append(f"{self.name}.stamp")
        return replace(after, reason=(after.reason or "") + self.name), []

    async def before_write(self, before: LedgerRow | None, after: LedgerRow, rows: Sequence[OutboxRow]) -> None:
        self.calls.append(f"{self.name}.before:{self.table.writes}:{after.reason}")

    def after_commit(self, before: LedgerRow | None, after: LedgerRow, rows: Sequence[OutboxRow]) -> None:
        self.calls.append(f"{self.name}.after:{self.table.writes}:{before.status if before else None}")


async def test_hooks_stamp_in_order_intend_before_the_write_and_hear_after_the_commit() -> None:
    table, calls = MemoryTable("messages"), []
    ledger = Ledger(table, b"k", hooks=[Recorder("a", calls, table), Recorder("b", calls, table)])
    await ledger.record_rejected(LedgerRow(message_id="m", status=Status.REJECTED))
    assert calls == ["a.stamp", "b.stamp", "a.before:0:ab", "b.before:0:ab", "a.after:1:None", "b.after:1:None"]
    row = await ledger.get("m")
    assert row is not None and row.reason == "ab"


async def test_a_write_that_loses_its_race_tells_no_hook_it_committed() -> None:
    table, calls = MemoryTable("messages"), []
    ledger = Ledger(table, b"k", hooks=[Recorder("a", calls, table)])
    await ledger.record_rejected(LedgerRow(message_id="m", status=Status.REJECTED))
    row = await ledger.get("m")
    assert row is not None
    await ledger.update(row, replace(row, reason="first"))
    calls.clear()
    with pytest.raises(EtagMismatch):
        await ledger.update(row, replace(row, reason="stale"))
    assert [c.split(":")[0] for c in calls] == ["a.stamp", "a.before"]
