"""Async storage clients shared by the whole runner, and the same-host queue watcher.

Why: one service client per connection string keeps one connection pool per account (the queue
pipeline is the hot path a benchmark measures), and `QueueWatcher` reproduces the host's
`SharedQueueWatcher`: a write through a queue output binding (or to a poison queue) wakes a listener
of that queue in the same host at once instead of after its backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables.aio import TableServiceClient
from azure.storage.blob.aio import BlobServiceClient
from azure.storage.queue.aio import QueueClient, QueueServiceClient

log = logging.getLogger(__name__)


class StorageClients:
    """Lazily built async clients, cached per connection string (and per queue)."""

    def __init__(self) -> None:
        self._queue_services: dict[str, QueueServiceClient] = {}
        self._queues: dict[tuple[str, str], QueueClient] = {}
        self._tables: dict[str, TableServiceClient] = {}
        self._blobs: dict[str, BlobServiceClient] = {}

    def queue(self, connection_string: str, name: str) -> QueueClient:
        """A client that sends and receives raw text: the runner does base64 itself."""
        key = (connection_string, name)
        if key not in self._queues:
            if connection_string not in self._queue_services:
                self._queue_services[connection_string] = QueueServiceClient.from_connection_string(
                    connection_string, use_env_settings=False
                )
            self._queues[key] = self._queue_services[connection_string].get_queue_client(name)
        return self._queues[key]

    def tables(self, connection_string: str) -> TableServiceClient:
        if connection_string not in self._tables:
            self._tables[connection_string] = TableServiceClient.from_connection_string(
                connection_string, use_env_settings=False
            )
        return self._tables[connection_string]

    def blobs(self, connection_string: str) -> BlobServiceClient:
        if connection_string not in self._blobs:
            self._blobs[connection_string] = BlobServiceClient.from_connection_string(
                connection_string, use_env_settings=False
            )
        return self._blobs[connection_string]

    async def close(self) -> None:
        for queue in self._queues.values():
            await queue.close()
        for service in self._queue_services.values():
            await service.close()
        for tables in self._tables.values():
            await tables.close()
        for blobs in self._blobs.values():
            await blobs.close()


async def send_creating_queue(queue: QueueClient, content: str) -> None:
    """`AddMessageAndCreateIfNotExists`: send; on 404 create the queue and send again."""
    try:
        await queue.send_message(content)
    except ResourceNotFoundError:
        with contextlib.suppress(ResourceExistsError):  # created concurrently by another writer
            await queue.create_queue()
        await queue.send_message(content)


class QueueWatcher:
    """Wake-up events for listeners, keyed by queue URL."""

    def __init__(self) -> None:
        self._events: dict[str, set[asyncio.Event]] = {}

    def watch(self, queue_url: str) -> asyncio.Event:
        event = asyncio.Event()
        self._events.setdefault(queue_url, set()).add(event)
        return event

    def notify(self, queue_url: str) -> None:
        for event in self._events.get(queue_url, ()):
            event.set()
