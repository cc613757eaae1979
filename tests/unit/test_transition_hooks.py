"""The ledger's transition hooks: each stamps the row in turn, writes its intent before the write, and is
told after the commit; a write that raises tells each hook whether it may have committed all the same."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from shared.errors import EtagMismatch, TransientError
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

    def after_failure(self, after: LedgerRow, rows: Sequence[OutboxRow], *, may_have_committed: bool) -> None:
        self.calls.append(f"{self.name}.failed:{may_have_committed}")


async def test_hooks_stamp_in_order_intend_before_the_write_and_hear_after_the_commit() -> None:
    table, calls = MemoryTable("messages"), list[str]()
    ledger = Ledger(table, b"k", hooks=[Recorder("a", calls, table), Recorder("b", calls, table)])
    await ledger.record_rejected(LedgerRow(message_id="m", status=Status.REJECTED))
    assert calls == ["a.stamp", "b.stamp", "a.before:0:ab", "b.before:0:ab", "a.after:1:None", "b.after:1:None"]
    row = await ledger.get("m")
    assert row is not None and row.reason == "ab"


async def one_row_under_one_hook() -> tuple[Ledger, MemoryTable, list[str], LedgerRow]:
    """A ledger with one hook and one stored row, for tests of how a failed write reaches the hook."""
    table, calls = MemoryTable("messages"), list[str]()
    ledger = Ledger(table, b"k", hooks=[Recorder("a", calls, table)])
    await ledger.record_rejected(LedgerRow(message_id="m", status=Status.REJECTED))
    row = await ledger.get("m")
    assert row is not None
    return ledger, table, calls, row


async def test_a_write_that_loses_its_race_tells_the_hook_it_surely_did_not_commit() -> None:
    ledger, _, calls, row = await one_row_under_one_hook()
    await ledger.update(row, replace(row, reason="first"))
    calls.clear()
    with pytest.raises(EtagMismatch):
        await ledger.update(row, replace(row, reason="stale"))
    assert calls[-1] == "a.failed:False" and [c.split(":")[0] for c in calls] == ["a.stamp", "a.before", "a.failed"]


async def test_a_write_that_times_out_tells_the_hook_it_may_have_committed() -> None:
    """A timeout may hide a commit: the hook must keep what lets a sweep finish the work."""
    ledger, table, calls, row = await one_row_under_one_hook()

    async def timed_out(*args: object, **kwargs: object) -> str:
        raise TransientError("storage timed out")

    table.update = timed_out  # type: ignore[method-assign]
    calls.clear()
    with pytest.raises(TransientError):
        await ledger.update(row, replace(row, reason="late"))
    assert calls[-1] == "a.failed:True"
