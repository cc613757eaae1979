"""Build the async storage clients once per process, from a connection string or managed identity."""

from __future__ import annotations

from typing import Any

from azure.data.tables.aio import TableServiceClient
from azure.storage.blob.aio import BlobServiceClient
from azure.storage.queue.aio import QueueServiceClient

from shared.adapters.blobs import PayloadStore
from shared.adapters.queues import QueueWriter
from shared.adapters.tables import TableStore
from shared.settings import Settings

# aiohttp's trust_env makes every request look up ~/.netrc and proxy variables on a worker thread;
# the app needs neither (no proxy in Functions), and those thread hops cost a third of its CPU.
CLIENT_OPTIONS: dict[str, Any] = {"use_env_settings": False}


class StorageClients:
    """Table and queue service clients for the app's storage account."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._credential: Any = None
        if settings.storage_connection_string:
            conn = settings.storage_connection_string
            self.tables = TableServiceClient.from_connection_string(conn, **CLIENT_OPTIONS)
            self.queues = QueueServiceClient.from_connection_string(conn, **CLIENT_OPTIONS)
            self.blobs = BlobServiceClient.from_connection_string(conn, **CLIENT_OPTIONS)
        else:
            from azure.identity.aio import DefaultAzureCredential  # lazy: only needed in Azure

            account = settings.storage_account_name
            self._credential = DefaultAzureCredential()
            self.tables = TableServiceClient(
                f"https://{account}.table.core.windows.net", credential=self._credential, **CLIENT_OPTIONS
            )
            self.queues = QueueServiceClient(
                f"https://{account}.queue.core.windows.net", credential=self._credential, **CLIENT_OPTIONS
            )
            self.blobs = BlobServiceClient(
                f"https://{account}.blob.core.windows.net", credential=self._credential, **CLIENT_OPTIONS
            )

    def table(self, name: str) -> TableStore:
        return TableStore(self.tables.get_table_client(name))

    def payloads(self, container: str) -> PayloadStore:
        return PayloadStore(self.blobs.get_container_client(container))

    def queue(self, name: str) -> QueueWriter:
        return QueueWriter(self.queues.get_queue_client(name))

    async def close(self) -> None:
        await self.tables.close()
        await self.queues.close()
        await self.blobs.close()
        if self._credential is not None:
            await self._credential.close()
