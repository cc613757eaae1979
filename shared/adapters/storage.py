"""Build the async storage clients once per process, from a connection string or the app's identity."""

from __future__ import annotations

from typing import Any

from azure.data.tables.aio import TableServiceClient
from azure.storage.blob.aio import BlobServiceClient
from azure.storage.queue.aio import QueueServiceClient

from shared.adapters.blobs import PayloadStore
from shared.adapters.queues import QueueWriter
from shared.adapters.sdk_options import NO_ENV_SETTINGS
from shared.adapters.tables import TableStore
from shared.errors import ConfigurationError
from shared.settings import Settings

CLIENT_OPTIONS: dict[str, Any] = {**NO_ENV_SETTINGS}


class StorageClients:
    """Table, queue and blob service clients for the app's storage account.

    Identity-based, each endpoint is the host's own `AzureWebJobsStorage__<service>ServiceUri` when set
    (the form the Functions host documents for identity-based host storage, and the only one that
    works outside the Azure public cloud: "Connecting to host storage with an identity",
    https://learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity),
    else derived from the account name. The credential is the process's one credential, owned by the
    caller (see shared/adapters/identity.py).
    """

    def __init__(self, settings: Settings, credential: Any = None) -> None:
        self._settings = settings
        if settings.storage_connection_string:
            conn = settings.storage_connection_string
            self.tables = TableServiceClient.from_connection_string(conn, **CLIENT_OPTIONS)
            self.queues = QueueServiceClient.from_connection_string(conn, **CLIENT_OPTIONS)
            self.blobs = BlobServiceClient.from_connection_string(conn, **CLIENT_OPTIONS)
            return
        if credential is None:
            raise ConfigurationError("identity-based storage needs a credential")
        self.tables = TableServiceClient(service_uri(settings, "table"), credential=credential, **CLIENT_OPTIONS)
        self.queues = QueueServiceClient(service_uri(settings, "queue"), credential=credential, **CLIENT_OPTIONS)
        self.blobs = BlobServiceClient(service_uri(settings, "blob"), credential=credential, **CLIENT_OPTIONS)

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


def service_uri(settings: Settings, service: str) -> str:
    """The endpoint of one storage service ("queue", "table", "blob") for identity-based access."""
    configured = settings.storage_service_uris.get(service)
    if configured:
        return configured
    if not settings.storage_account_name:
        raise ConfigurationError(
            f"AzureWebJobsStorage__{service}ServiceUri or AzureWebJobsStorage__accountName must be set"
        )
    return f"https://{settings.storage_account_name}.{service}.core.windows.net"
