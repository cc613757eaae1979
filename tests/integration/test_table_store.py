"""`TableStore`'s single-entity writes (the SDK's request, sent through the client's pipeline, answered
by us) keep the port's contract against Azurite: the etag of every write is the one a read returns,
typed values come back typed, and every refusal maps to the branch the services rely on. A stand-in
server answers the statuses Azurite never gives (503, 429, 500, 400) to check their branches."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp import web
from azure.data.tables.aio import TableServiceClient

from devstack.azurite import ACCOUNT, ACCOUNT_KEY
from shared.adapters.tables import TableStore
from shared.errors import Conflict, EtagMismatch, PermanentError, TransientError
from tests.integration.conftest import new_table, serving

P = "p"


@pytest.fixture
async def table(table_service: TableServiceClient) -> TableStore:
    return await new_table(table_service, "store")


async def test_each_write_returns_the_etag_a_read_then_sees(table: TableStore) -> None:
    when = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
    etag = await table.insert(
        {"PartitionKey": P, "RowKey": "r", "N": 2**31 - 1, "F": 0.5, "B": True, "W": when, "T": "ünï 😀"}
    )
    stored = await table.get(P, "r")
    assert stored is not None and stored.etag == etag
    assert (stored.entity["N"], stored.entity["F"], stored.entity["B"], stored.entity["T"]) == (
        2**31 - 1,
        0.5,
        True,
        "ünï 😀",
    )
    assert stored.entity["W"] == when
    merged = await table.update({"PartitionKey": P, "RowKey": "r", "M": "m"}, etag)
    stored = await table.get(P, "r")
    assert stored is not None and stored.etag == merged != etag
    assert stored.entity["M"] == "m" and stored.entity["N"] == 2**31 - 1  # a merge keeps the rest
    replaced = await table.update({"PartitionKey": P, "RowKey": "r", "R": 1}, merged, replace=True)
    stored = await table.get(P, "r")
    assert stored is not None and stored.etag == replaced and "M" not in stored.entity and stored.entity["R"] == 1


async def test_a_read_with_select_returns_those_columns_and_the_etag(table: TableStore) -> None:
    """A slim read (the ledger's SLIM_SELECT) gets the chosen columns only; a chosen column the entity
    lacks is absent or None, which readers treat alike."""
    etag = await table.insert({"PartitionKey": P, "RowKey": "sel", "A": "a", "N": 7, "Big": "x" * 30_000})
    stored = await table.get(P, "sel", ["PartitionKey", "RowKey", "A", "N", "Missing"])
    assert stored is not None and stored.etag == etag
    assert (stored.entity["PartitionKey"], stored.entity["RowKey"], stored.entity["A"], stored.entity["N"]) == (
        P,
        "sel",
        "a",
        7,
    )
    assert "Big" not in stored.entity and stored.entity.get("Missing") is None
    assert await table.get(P, "absent", ["A"]) is None


async def test_an_insert_of_an_existing_key_is_a_conflict_and_changes_nothing(table: TableStore) -> None:
    etag = await table.insert({"PartitionKey": P, "RowKey": "taken", "V": 1})
    with pytest.raises(Conflict):
        await table.insert({"PartitionKey": P, "RowKey": "taken", "V": 2})
    stored = await table.get(P, "taken")
    assert stored is not None and stored.entity["V"] == 1 and stored.etag == etag


async def test_an_update_with_a_stale_etag_or_of_a_row_that_is_gone_is_a_mismatch(table: TableStore) -> None:
    first = await table.insert({"PartitionKey": P, "RowKey": "r", "V": 0})
    await table.update({"PartitionKey": P, "RowKey": "r", "V": 1}, first)
    with pytest.raises(EtagMismatch):
        await table.update({"PartitionKey": P, "RowKey": "r", "V": 2}, first)
    with pytest.raises(EtagMismatch):
        await table.update({"PartitionKey": P, "RowKey": "never"}, "*")
    stored = await table.get(P, "r")
    assert stored is not None and stored.entity["V"] == 1


async def test_upserts_merge_or_replace_and_deletes_are_idempotent(table: TableStore) -> None:
    await table.upsert({"PartitionKey": P, "RowKey": "u", "A": "a"})
    await table.upsert({"PartitionKey": P, "RowKey": "u", "B": "b"})
    stored = await table.get(P, "u")
    assert stored is not None and (stored.entity["A"], stored.entity["B"]) == ("a", "b")
    await table.upsert({"PartitionKey": P, "RowKey": "u", "C": "c"}, replace=True)
    stored = await table.get(P, "u")
    assert stored is not None and "A" not in stored.entity and stored.entity["C"] == "c"
    await table.delete(P, "u")
    await table.delete(P, "u")  # already gone: nothing to do
    assert await table.get(P, "u") is None


async def test_a_value_the_service_cannot_store_is_permanent(table: TableStore) -> None:
    for entity in (
        {"PartitionKey": P, "RowKey": "big", "V": 2**40},
        {"PartitionKey": P, "RowKey": "nested", "V": {"a": 1}},
    ):
        with pytest.raises(PermanentError):
            await table.insert(entity)
    assert await table.get(P, "big") is None


async def test_writes_to_a_table_that_does_not_exist_are_permanent_not_a_conflict_or_a_race(
    table_service: TableServiceClient,
) -> None:
    missing = TableStore(table_service.get_table_client("nosuchtable0123"))
    with pytest.raises(PermanentError) as refused:
        await missing.insert({"PartitionKey": P, "RowKey": "r"})
    assert not isinstance(refused.value, Conflict | EtagMismatch)
    with pytest.raises(PermanentError):
        await missing.upsert({"PartitionKey": P, "RowKey": "r"})


@pytest.fixture
async def answering() -> AsyncIterator[tuple[TableStore, list[int]]]:
    """A table client pointed at a server that answers each request with the next status given."""
    statuses: list[int] = []

    async def answer(request: web.Request) -> web.Response:
        status = statuses.pop(0)
        error = {"odata.error": {"code": f"Code{status}", "message": {"lang": "en-US", "value": "refused"}}}
        return web.Response(status=status, text=json.dumps(error), content_type="application/json")

    async with serving(answer) as port:
        connection = (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"TableEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
        )
        service = TableServiceClient.from_connection_string(connection, retry_total=0)
        yield TableStore(service.get_table_client("answered")), statuses
        await service.close()


@pytest.mark.parametrize(
    ("status", "branch"),
    [
        (503, TransientError),
        (500, TransientError),
        (429, TransientError),
        (408, TransientError),
        (400, PermanentError),
        (403, PermanentError),
    ],
)
async def test_each_other_answer_maps_to_one_branch(
    answering: tuple[TableStore, list[int]], status: int, branch: type[Exception]
) -> None:
    store, statuses = answering
    calls = [
        lambda: store.insert({"PartitionKey": P, "RowKey": "r"}),
        lambda: store.update({"PartitionKey": P, "RowKey": "r"}, "*"),
        lambda: store.upsert({"PartitionKey": P, "RowKey": "r"}),
        lambda: store.delete(P, "r"),
    ]
    for call in calls:
        statuses.append(status)
        with pytest.raises(branch) as raised:
            await call()
        assert not isinstance(raised.value, Conflict | EtagMismatch)
