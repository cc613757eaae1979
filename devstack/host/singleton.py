"""The listener singleton: a blob lease that lets only one instance run a timer.

Why: the timer listener is `[Singleton(Mode = Listener)]`. Every instance sharing a host id and
storage account competes for a 60 s lease on
`azure-webjobs-hosts/locks/{hostId}/Host.Functions.{name}.Listener`; the holder renews it, the others
retry every `listenerLockRecoveryPollingInterval` (host.json `singleton`, 1 min by default; tests set
it short). Losing the lease stops the listener until it is won again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob.aio import BlobClient, BlobLeaseClient, BlobServiceClient, ContainerClient

from devstack.host.config import SingletonOptions

log = logging.getLogger(__name__)

HOSTS_CONTAINER = "azure-webjobs-hosts"


def lock_blob_name(host_id: str, function_name: str) -> str:
    return f"locks/{host_id}/Host.Functions.{function_name}.Listener"


class ListenerLock:
    """Acquire-and-hold loop around a blob lease; runs `on_acquired` / `on_lost` callbacks."""

    def __init__(
        self,
        blobs: BlobServiceClient,
        blob_name: str,
        options: SingletonOptions,
        on_acquired: Callable[[], Awaitable[None]],
        on_lost: Callable[[], Awaitable[None]],
    ) -> None:
        self._container = blobs.get_container_client(HOSTS_CONTAINER)
        self._blob: BlobClient = self._container.get_blob_client(blob_name)
        self._options = options
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self._lease: BlobLeaseClient | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"singleton:{self._blob.blob_name}")

    def stop_competing(self) -> None:
        """Stop acquiring and renewing; the lease (if held) is kept until `release`."""
        if self._task is not None:
            self._task.cancel()

    async def release(self) -> None:
        """Give the lease up so another instance can take over at once (graceful shutdown)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._lease is not None:
            try:
                await self._lease.release()
            except HttpResponseError as exc:
                log.info("Releasing lease on %s failed: %s", self._blob.blob_name, exc)
            self._lease = None

    async def _run(self) -> None:
        retry = self._options.listener_lock_recovery_polling_interval.total_seconds()
        while True:
            try:
                if await self._try_acquire():
                    await self._on_acquired()
                    await self._hold()
                    await self._on_lost()
            except AzureError as exc:  # storage unreachable: keep competing, as the host does
                log.warning("Singleton lock %s: %s", self._blob.blob_name, exc)
            await asyncio.sleep(retry)

    async def _try_acquire(self) -> bool:
        await self._ensure_blob()
        lease = BlobLeaseClient(self._blob)
        try:
            await lease.acquire(lease_duration=int(self._options.listener_lock_period.total_seconds()))
        except HttpResponseError as exc:
            if exc.status_code != 409:  # 409 LeaseAlreadyPresent: another instance holds it
                log.warning("Acquiring lease on %s failed: %s", self._blob.blob_name, exc)
            return False
        self._lease = lease
        log.info("Singleton lock acquired (%s)", self._blob.blob_name)
        return True

    async def _hold(self) -> None:
        renew_every = self._options.listener_lock_period.total_seconds() / 2
        while self._lease is not None:
            await asyncio.sleep(renew_every)
            try:
                await self._lease.renew()
            except HttpResponseError as exc:
                log.error("Singleton lock renewal failed for %s: %s", self._blob.blob_name, exc)
                self._lease = None

    async def _ensure_blob(self) -> None:
        for _ in range(2):
            try:
                await self._blob.upload_blob(b"", overwrite=False)
            except ResourceExistsError:
                return
            except ResourceNotFoundError:
                await ensure_container(self._container)
                continue
            return


async def ensure_container(container: ContainerClient) -> None:
    """Create `azure-webjobs-hosts` on first use, as the host does."""
    with contextlib.suppress(ResourceExistsError):
        await container.create_container()
