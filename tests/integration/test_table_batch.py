"""Entity-group transactions through `TableStore.transact` (envelope: shared/adapters/table_batch.py)
against Azurite: every operation kind lands with the etag the service gave it, typed values come back
typed, and each refusal maps to its branch with nothing of the changeset applied."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from azure.data.tables.aio import TableServiceClient

from shared.adapters.tables import Op, TableStore
from shared.errors import Conflict, EtagMismatch, PermanentError
from tests.integration.conftest import new_table

P = "p"


@pytest.fixture
async def table(table_service: TableServiceClient) -> TableStore:
    return await new_table(table_service, "batch")


async def test_every_kind_lands_with_the_etag_the_service_gave(table: TableStore) -> None:
    await table.insert({"PartitionKey": P, "RowKey": "merge-me", "A": "a"})
    await table.insert({"PartitionKey": P, "RowKey": "replace-me", "A": "a", "B": "b"})
    await table.insert({"PartitionKey": P, "RowKey": "delete-me"})
    merge_etag = (await table.get(P, "merge-me")).etag  # type: ignore[union-attr]
    when = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
    etags = await table.transact(
        [
            Op("create", {"PartitionKey": P, "RowKey": "new", "N": 2**31 - 1, "F": 1.5, "T": "ünï ✓ 😀", "W": when}),
            Op("merge", {"PartitionKey": P, "RowKey": "merge-me", "B": "b"}, etag=merge_etag),
            Op("replace", {"PartitionKey": P, "RowKey": "replace-me", "C": "c"}, etag="*"),
            Op("upsert", {"PartitionKey": P, "RowKey": "upserted", "A": "u"}),
            Op("delete", {"PartitionKey": P, "RowKey": "delete-me"}),
        ]
    )
    assert len(etags) == 5 and all(etags[:4]) and etags[4] == ""
    new = await table.get(P, "new")
    assert new is not None and new.etag == etags[0]
    assert (new.entity["N"], new.entity["F"], new.entity["T"]) == (2**31 - 1, 1.5, "ünï ✓ 😀")
    merged = await table.get(P, "merge-me")
    assert merged is not None and (merged.entity["A"], merged.entity["B"]) == ("a", "b") and merged.etag == etags[1]
    replaced = await table.get(P, "replace-me")
    assert replaced is not None and "A" not in replaced.entity and replaced.entity["C"] == "c"
    assert await table.get(P, "upserted") is not None and await table.get(P, "delete-me") is None


async def test_a_create_on_an_existing_row_is_a_conflict_and_applies_nothing(table: TableStore) -> None:
    await table.insert({"PartitionKey": P, "RowKey": "taken"})
    with pytest.raises(Conflict):
        await table.transact(
            [Op("create", {"PartitionKey": P, "RowKey": "fresh"}), Op("create", {"PartitionKey": P, "RowKey": "taken"})]
        )
    assert await table.get(P, "fresh") is None


async def test_a_stale_etag_or_a_missing_row_is_an_etag_mismatch(table: TableStore) -> None:
    etag = await table.insert({"PartitionKey": P, "RowKey": "row", "A": "1"})
    await table.update({"PartitionKey": P, "RowKey": "row", "A": "2"}, etag)
    with pytest.raises(EtagMismatch):
        await table.transact(
            [
                Op("create", {"PartitionKey": P, "RowKey": "x"}),
                Op("merge", {"PartitionKey": P, "RowKey": "row", "A": "3"}, etag=etag),
            ]
        )
    with pytest.raises(EtagMismatch):
        await table.transact(
            [Op("delete", {"PartitionKey": P, "RowKey": "gone"}), Op("delete", {"PartitionKey": P, "RowKey": "row"})]
        )
    row = await table.get(P, "row")
    assert row is not None and row.entity["A"] == "2" and await table.get(P, "x") is None


async def test_a_value_the_service_refuses_is_permanent(table: TableStore) -> None:
    with pytest.raises(PermanentError):
        await table.transact([Op("create", {"PartitionKey": P, "RowKey": "big", "Text": "x" * 40_000})])
    with pytest.raises(PermanentError):
        await table.transact(
            [Op("create", {"PartitionKey": P, "RowKey": "a"}), Op("create", {"PartitionKey": "other", "RowKey": "b"})]
        )
