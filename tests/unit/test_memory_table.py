"""The in-memory table keeps the documented semantics of `TableStore` that the services rely on."""

from __future__ import annotations

import pytest

from shared.adapters.tables import Op
from shared.errors import Conflict, EtagMismatch, PermanentError
from tests.fakes import MemoryTable, parse_filter


def _row(pk: str = "p", rk: str = "r", **props: object) -> dict[str, object]:
    return {"PartitionKey": pk, "RowKey": rk, **props}


async def test_an_insert_of_an_existing_key_is_a_conflict() -> None:
    table = MemoryTable("t")
    await table.insert(_row(Value=1))
    with pytest.raises(Conflict):
        await table.insert(_row(Value=2))
    stored = await table.get("p", "r")
    assert stored is not None and stored.entity["Value"] == 1


async def test_every_write_changes_the_etag() -> None:
    table = MemoryTable("t")
    etags = [await table.insert(_row(V=0))]
    etags.append(await table.update(_row(V=1), etags[-1]))
    await table.upsert(_row(V=2))
    stored = await table.get("p", "r")
    assert stored is not None
    etags.append(stored.etag)
    assert len(set(etags)) == 3


async def test_an_update_with_a_stale_etag_or_on_a_missing_row_is_a_mismatch() -> None:
    table = MemoryTable("t")
    first = await table.insert(_row(V=0))
    await table.update(_row(V=1), first)
    with pytest.raises(EtagMismatch):
        await table.update(_row(V=2), first)
    with pytest.raises(EtagMismatch):
        await table.update(_row(rk="absent", V=1), first)
    stored = await table.get("p", "r")
    assert stored is not None and stored.entity["V"] == 1


async def test_update_and_upsert_merge_and_replace_replaces() -> None:
    table = MemoryTable("t")
    etag = await table.insert(_row(A=1, B=1))
    await table.update(_row(B=2, C=None), etag)  # None is not written (as `TableStore` drops it)
    assert table.entity("p", "r") == _row(A=1, B=2)
    await table.upsert(_row(C=3))
    assert table.entity("p", "r") == _row(A=1, B=2, C=3)
    await table.upsert(_row(D=4), replace=True)
    assert table.entity("p", "r") == _row(D=4)


async def test_a_transaction_is_all_or_nothing() -> None:
    table = MemoryTable("t")
    etag = await table.insert(_row(rk="ledger", Status="Sent"))
    await table.insert(_row(rk="evt|1"))
    before = dict(table.rows)
    ops = [Op("create", _row(rk="evt|2")), Op("create", _row(rk="evt|1")), Op("merge", _row(rk="ledger", S="x"), etag)]
    with pytest.raises(Conflict):
        await table.transact(ops)
    assert table.rows == before
    stale = [Op("create", _row(rk="evt|3")), Op("merge", _row(rk="ledger", S="x"), etag="stale")]
    with pytest.raises(EtagMismatch):
        await table.transact(stale)
    assert table.rows == before
    etags = await table.transact([Op("create", _row(rk="evt|3")), Op("merge", _row(rk="ledger", S="x"), etag)])
    assert len(etags) == 2 and all(etags)
    assert table.entity("p", "evt|3") is not None and table.entity("p", "ledger") == _row(
        rk="ledger", Status="Sent", S="x"
    )


async def test_a_transaction_spans_one_partition_and_names_each_row_once() -> None:
    table = MemoryTable("t")
    with pytest.raises(PermanentError):
        await table.transact([Op("create", _row(pk="a")), Op("create", _row(pk="b"))])
    with pytest.raises(PermanentError):
        await table.transact([Op("upsert", _row()), Op("upsert", _row())])
    assert table.rows == {}


async def test_a_value_a_table_cannot_hold_is_refused() -> None:
    table = MemoryTable("t")
    with pytest.raises(PermanentError):
        await table.insert(_row(Value=[1, 2]))
    with pytest.raises(PermanentError):
        await table.insert(_row(Text="x" * (32 * 1024 + 1)))


async def test_delete_of_a_missing_row_is_quiet() -> None:
    table = MemoryTable("t")
    await table.delete("p", "r")
    await table.insert(_row())
    await table.delete("p", "r")
    assert await table.get("p", "r") is None


async def test_a_query_filters_orders_and_selects() -> None:
    table = MemoryTable("t")
    for pk, rk in [
        ("b", "2"),
        ("a", "ledger|a"),
        ("a", "evt|1"),
        ("due", "2026-01-02|m|sla"),
        ("due", "2026-01-01|m|sla"),
    ]:
        await table.insert(_row(pk, rk, N=1))
    found = [(e["PartitionKey"], e["RowKey"]) async for e in table.query("PartitionKey eq @pk", {"pk": "a"})]
    assert found == [("a", "evt|1"), ("a", "ledger|a")]
    due = table.query("PartitionKey eq @pk and RowKey lt @until", {"pk": "due", "until": "2026-01-01|~"})
    assert [e["RowKey"] async for e in due] == ["2026-01-01|m|sla"]
    ledger = table.query("RowKey ge 'ledger|' and RowKey lt 'ledger}'", select=["RowKey"])
    assert [e async for e in ledger] == [{"RowKey": "ledger|a"}]


def test_a_filter_the_fake_does_not_know_is_refused() -> None:
    with pytest.raises(ValueError, match="not understood"):
        parse_filter("PartitionKey eq 'a' or RowKey eq 'b'", {})
    assert parse_filter("N eq @n", {"n": 1})({"N": 1})
    assert not parse_filter("N eq @n", {"n": 1})({"N": "1"})  # another type never matches
    assert not parse_filter("N ne @n", {"n": 1})({})  # nor does a missing property
