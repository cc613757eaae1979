"""Batched deletes against Azurite through the SDK: a batch removes its rows in one request, and a batch
with a row already gone is refused whole (as the service does) and finished one by one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from azure.data.tables.aio import TableServiceClient

from devstack.azurite import Azurite
from shared.adapters.group_commit import delete_rows
from shared.adapters.tables import Op, TableStore
from shared.errors import EtagMismatch


@pytest.fixture
async def table(azurite: Azurite) -> AsyncIterator[TableStore]:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    store = TableStore(service.get_table_client(f"deletes{uuid.uuid4().hex[:10]}"))
    await store.create_if_missing()
    yield store
    await service.close()


async def _keys(table: TableStore, partition: str) -> list[str]:
    return [str(e["RowKey"]) async for e in table.query("PartitionKey eq @pk", {"pk": partition})]


async def test_a_batch_with_a_missing_row_is_refused_whole_then_finished_one_by_one(table: TableStore) -> None:
    keys = [f"r{i:03d}" for i in range(150)]
    for start in range(0, 150, 50):
        await table.transact([Op("upsert", {"PartitionKey": "p", "RowKey": k}) for k in keys[start : start + 50]])
    await table.delete("p", "r007")
    with pytest.raises(EtagMismatch):  # what the batch path relies on: the service refuses it whole
        await table.transact([Op("delete", {"PartitionKey": "p", "RowKey": k}) for k in [*keys[:3], "r007"]])
    assert len(await _keys(table, "p")) == 149
    await delete_rows(table, "p", keys)
    assert await _keys(table, "p") == []
