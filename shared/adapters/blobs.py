"""Large send requests kept in blob storage: the claim-check behind the 64 KiB queue message limit.

Why: an email may carry up to 10 MB of attachments, a queue message at most 64 KiB, and a table
property 64 KiB. A request too large for either is stored as a blob named after its message id; the
queue message and the ledger row carry only that name.
"""

from __future__ import annotations

import re

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError, ServiceRequestError
from azure.storage.blob.aio import ContainerClient

from shared.errors import PermanentError, TransientError
from shared.models import PAYLOAD_NAME_PATTERN


class PayloadStore:
    def __init__(self, container: ContainerClient) -> None:
        self._container = container
        self._ready = False

    async def _ensure(self) -> None:
        if not self._ready:
            try:
                await self._container.create_container()
            except ResourceExistsError:
                pass
            except (HttpResponseError, ServiceRequestError) as exc:
                raise TransientError(f"payload store unavailable: {type(exc).__name__}") from exc
            self._ready = True

    async def put(self, name: str, text: str) -> None:
        await self._ensure()
        try:
            await self._container.upload_blob(name, text.encode(), overwrite=True)
        except (HttpResponseError, ServiceRequestError) as exc:
            raise TransientError(f"payload store unavailable: {type(exc).__name__}") from exc

    async def get(self, name: str) -> str:
        """The request stored under `name`. Only names of the form this app writes are read: the
        container client would follow `../other-container/blob` out of the payload container."""
        if not re.fullmatch(PAYLOAD_NAME_PATTERN, name):
            raise PermanentError("not a payload name this app writes")
        try:
            downloader = await self._container.download_blob(name)
            return (await downloader.readall()).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PermanentError(f"payload {name} is not UTF-8 text") from exc
        except ResourceNotFoundError as exc:
            raise PermanentError(f"payload {name} is gone (purged by retention or never stored)") from exc
        except (HttpResponseError, ServiceRequestError) as exc:
            raise TransientError(f"payload store unavailable: {type(exc).__name__}") from exc

    async def delete(self, name: str) -> None:
        try:
            await self._container.delete_blob(name)
        except ResourceNotFoundError:
            return
        except (HttpResponseError, ServiceRequestError) as exc:
            raise TransientError(f"payload store unavailable: {type(exc).__name__}") from exc

    async def close(self) -> None:
        await self._container.close()
