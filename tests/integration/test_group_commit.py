"""Grouped upserts into one partition, against real Azurite through the real SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from azure.data.tables.aio import TableServiceClient

from shared.adapters.group_commit import MAX_OPERATIONS, GroupUpserts, delete_rows
from shared.adapters.tables import Op, TableStore
from shared.errors import EtagMismatch, PermanentError
from tests.integration.conftest import new_table

PARTITION = "due"


class CountingStore(TableStore):
    """The real store, counting the requests it makes."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.upserts = 0
        self.transactions: list[int] = []

    async def upsert(self, entity: Mapping[str, Any], replace: bool = False) -> None:
        self.upserts += 1
        await super().upsert(entity, replace)

    async def transact(self, ops: Sequence[Op]) -> list[str]:
        self.transactions.append(len(ops))
        return await super().transact(ops)


@pytest.fixture
async def store(table_service: TableServiceClient) -> CountingStore:
    return await new_table(table_service, "group", CountingStore)


def entry(key: str, **fields: Any) -> dict[str, Any]:
    return {"PartitionKey": PARTITION, "RowKey": key, **fields}


async def stored_keys(store: TableStore) -> set[str]:
    return {str(row["RowKey"]) async for row in store.query("PartitionKey eq @pk", {"pk": PARTITION})}


async def test_concurrent_upserts_share_transactions_and_all_land(store: CountingStore) -> None:
    writer = GroupUpserts(store, PARTITION)
    keys = [f"k{i:04d}" for i in range(250)]
    await asyncio.gather(*(writer.upsert(entry(key, Kind="sla")) for key in keys))
    assert await stored_keys(store) == set(keys)
    requests = store.upserts + len(store.transactions)
    assert requests < len(keys) / 2, f"{requests} requests for {len(keys)} entries"
    assert max(store.transactions) <= MAX_OPERATIONS
    assert store.upserts + sum(store.transactions) == len(keys)


async def test_a_lone_caller_is_written_at_once_as_a_plain_upsert(store: CountingStore) -> None:
    writer = GroupUpserts(store, PARTITION)
    await writer.upsert(entry("alone", Kind="sla"))
    assert await stored_keys(store) == {"alone"}
    assert (store.upserts, store.transactions) == (1, [])


async def test_upserts_merge_into_an_existing_row(store: CountingStore) -> None:
    await store.insert(entry("kept", Old="yes"))
    writer = GroupUpserts(store, PARTITION)
    await asyncio.gather(writer.upsert(entry("kept", New="yes")), writer.upsert(entry("other", New="yes")))
    row = await store.get(PARTITION, "kept")
    assert row is not None
    assert (row.entity["Old"], row.entity["New"]) == ("yes", "yes")


async def test_the_same_key_twice_in_one_write_is_one_operation(store: CountingStore) -> None:
    writer = GroupUpserts(store, PARTITION)
    first = asyncio.ensure_future(writer.upsert(entry("first")))
    await asyncio.sleep(0)  # the first write is now in flight; the next three wait for one write
    await asyncio.gather(
        writer.upsert(entry("twice", A=1)), writer.upsert(entry("twice", B=2)), writer.upsert(entry("third"))
    )
    await first
    row = await store.get(PARTITION, "twice")
    assert row is not None
    assert (row.entity["A"], row.entity["B"]) == (1, 2)
    assert store.transactions == [2]  # "twice" and "third"; a duplicate key would fail the transaction


async def test_a_failed_write_fails_its_callers_and_nobody_else(store: CountingStore) -> None:
    writer = GroupUpserts(store, PARTITION)
    first = asyncio.ensure_future(writer.upsert(entry("before")))
    await asyncio.sleep(0)
    bad = {"Nested": {"not": "storable"}}  # the SDK refuses a dict value before sending anything
    results = await asyncio.gather(
        writer.upsert(entry("bad", **bad)), writer.upsert(entry("victim")), return_exceptions=True
    )
    await first
    assert all(isinstance(result, PermanentError) for result in results), results
    await writer.upsert(entry("after"))  # the writer keeps working after a failed write
    assert await stored_keys(store) == {"before", "after"}


async def test_a_cancelled_caller_strands_nobody(store: CountingStore) -> None:
    writer = GroupUpserts(store, PARTITION)
    calls = [asyncio.ensure_future(writer.upsert(entry(f"c{i}"))) for i in range(10)]
    await asyncio.sleep(0)
    calls[0].cancel()
    calls[5].cancel()
    done = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), timeout=10)
    assert [i for i, result in enumerate(done) if isinstance(result, asyncio.CancelledError)] == [0, 5]
    assert {f"c{i}" for i in (1, 2, 3, 4, 6, 7, 8, 9)} <= await stored_keys(store)


async def test_an_entity_of_another_partition_is_refused(store: CountingStore) -> None:
    writer = GroupUpserts(store, PARTITION)
    with pytest.raises(ValueError, match="partition"):
        await writer.upsert({"PartitionKey": "elsewhere", "RowKey": "x"})
    assert (store.upserts, store.transactions) == (0, [])


async def _keys(table: TableStore, partition: str) -> list[str]:
    return [str(e["RowKey"]) async for e in table.query("PartitionKey eq @pk", {"pk": partition})]


async def test_batched_deletes_refused_whole_for_a_missing_row_finish_one_by_one(store: CountingStore) -> None:
    """delete_rows against Azurite: a batch with a row already gone is refused whole (as the service
    does), and that batch's rows then go singly; the rest go a hundred per transaction."""
    keys = [f"r{i:03d}" for i in range(150)]
    for start in range(0, 150, 50):
        await store.transact([Op("upsert", {"PartitionKey": "p", "RowKey": k}) for k in keys[start : start + 50]])
    await store.delete("p", "r007")
    with pytest.raises(EtagMismatch):  # what delete_rows relies on: the service refuses the batch whole
        await store.transact([Op("delete", {"PartitionKey": "p", "RowKey": k}) for k in [*keys[:3], "r007"]])
    assert len(await _keys(store, "p")) == 149
    store.transactions.clear()
    await delete_rows(store, "p", keys)
    assert await _keys(store, "p") == []
    assert store.transactions == [100, 50]  # the first refused (r007 gone), the second in one request
