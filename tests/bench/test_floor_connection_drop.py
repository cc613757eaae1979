"""A keep-alive connection that Azurite drops does not end the throughput floor, nor the seeding.

`make bench` once died on one `Server disconnected`: Node closes an idle keep-alive connection after
5 s, and a client that reuses it just then gets no answer. aiohttp resends idempotent requests itself;
azure-core's retry policies do not resend POST, PATCH or MERGE, so a table insert or a batch fails.
The pipeline survives that (the host delivers the message again); the floor must as well.

The proxy below stands between the floor and Azurite's table endpoint and closes a connection, without
forwarding, the moment a POST arrives on it after it has carried a response: exactly what the client
sees when Node closed it while idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from azure.data.tables import TableServiceClient
from azure.data.tables.aio import TableClient

from bench.rest import RestInserter
from bench.seed import insert_batched
from bench.throughput import QueueLimits, floor
from devstack.azurite import Azurite


class DroppingProxy:
    """Forwards TCP to `port`; drops the first `drops` POSTs that reuse a connection."""

    def __init__(self, port: int, drops: int) -> None:
        self._port = port
        self.remaining = drops
        self.dropped = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._port)
        answered = asyncio.Event()  # the connection has carried a response: it is a kept-alive one now
        back = asyncio.create_task(self._pipe(upstream_reader, client_writer, answered))
        try:
            while chunk := await client_reader.read(65536):
                if answered.is_set() and chunk.startswith(b"POST ") and self.remaining > 0:
                    self.remaining -= 1
                    self.dropped += 1
                    return  # closed without forwarding, as Node closes an idle socket
                answered.clear()
                upstream_writer.write(chunk)
                await upstream_writer.drain()
        except ConnectionError:
            return
        finally:
            back.cancel()
            for writer in (client_writer, upstream_writer):
                writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answered: asyncio.Event) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
                answered.set()


@pytest.fixture
async def proxied(azurite: Azurite) -> AsyncIterator[tuple[str, DroppingProxy]]:
    proxy = DroppingProxy(azurite.table_port, drops=3)
    port = await proxy.start()
    conn = azurite.connection_string.replace(f":{azurite.table_port}/", f":{port}/")
    yield conn, proxy
    await proxy.stop()


async def test_the_floor_redoes_a_message_whose_connection_was_dropped(proxied: tuple[str, DroppingProxy]) -> None:
    conn, proxy = proxied
    run = await floor(conn, 60, QueueLimits(batch_size=8, new_batch_threshold=4, max_dequeue_count=5))
    assert proxy.dropped == 3
    assert run.redone == 3  # each dropped insert or batch cost its message one more attempt, no more
    assert run.rate > 0


async def test_seeding_resends_an_insert_whose_connection_was_dropped(
    proxied: tuple[str, DroppingProxy], azurite: Azurite
) -> None:
    """The large histories are seeded with raw POSTs, which aiohttp does not resend by itself."""
    conn, proxy = proxied
    table = f"seed{uuid.uuid4().hex[:8]}"
    TableServiceClient.from_connection_string(azurite.connection_string).create_table(table)
    async with RestInserter(conn, limit=2) as rest:
        for i in range(10):
            await rest.insert(table, {"PartitionKey": "p", "RowKey": f"r{i}"})
    rows = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(table)
    assert proxy.dropped == 3
    assert sorted(row["RowKey"] for row in rows.list_entities()) == [f"r{i}" for i in range(10)]


async def test_seeding_resends_a_batch_whose_connection_was_dropped(proxied: tuple[str, DroppingProxy]) -> None:
    """`make bench` once died here: the SDK's pooled connection had idled past Azurite's keep-alive
    while the raw inserter seeded, and the next entity-group transaction met "Connection reset"."""
    conn, proxy = proxied
    entities = [{"PartitionKey": "p", "RowKey": f"r{i:03d}"} for i in range(500)]
    async with TableClient.from_connection_string(conn, f"seed{uuid.uuid4().hex[:8]}") as table:
        await table.create_table()
        await insert_batched(table, entities, concurrency=1)
        stored = sorted([row["RowKey"] async for row in table.list_entities()])
    assert proxy.dropped == 3
    assert stored == [entity["RowKey"] for entity in entities]
