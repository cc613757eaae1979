"""A minimal Table Storage REST inserter, used only to seed large histories.

Why not the SDK here: azure-data-tables spends about three times the emulator's CPU per request on
the client side (pipeline policies, serialization), so 200k seeding inserts through it take many
minutes on a small machine. The rows are the same; only the client that writes them is lighter.
Everything a benchmark measures goes through the SDK, as the app does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from email.utils import formatdate
from types import TracebackType
from typing import Any
from urllib.parse import urlparse

import aiohttp

# A POST that meets a keep-alive connection the emulator has just closed is not resent by aiohttp
# (it resends only idempotent methods). Seeding is not measured, so it sends the insert again; a 409
# then means the first attempt landed.
ATTEMPTS = 4


def _parts(connection_string: str) -> dict[str, str]:
    return dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)


class RestInserter:
    """Insert entities into one storage account with Shared Key auth, `limit` connections at most."""

    def __init__(self, connection_string: str, limit: int = 32) -> None:
        parts = _parts(connection_string)
        self._endpoint = parts["TableEndpoint"].rstrip("/")
        self._account = parts["AccountName"]
        self._key = base64.b64decode(parts["AccountKey"])
        self._path = urlparse(self._endpoint).path  # "/<account>" on the emulator, "" in Azure
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit))

    def _headers(self, table: str) -> dict[str, str]:
        date = formatdate(usegmt=True)
        to_sign = f"POST\n\napplication/json\n{date}\n/{self._account}{self._path}/{table}"
        signature = base64.b64encode(hmac.new(self._key, to_sign.encode(), hashlib.sha256).digest()).decode()
        return {
            "x-ms-date": date,
            "x-ms-version": "2019-02-02",
            "Authorization": f"SharedKey {self._account}:{signature}",
            "Content-Type": "application/json",
            "Accept": "application/json;odata=minimalmetadata",
            "DataServiceVersion": "3.0",
            "Prefer": "return-no-content",
        }

    async def insert(self, table: str, entity: Mapping[str, Any]) -> None:
        """Insert one entity. Values are sent untyped: strings, floats and ints below 2**31 only."""
        body = json.dumps(dict(entity))
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self._post(table, body, conflict_ok=attempt > 1)
                return
            except aiohttp.ClientConnectionError:
                if attempt == ATTEMPTS:
                    raise

    async def _post(self, table: str, body: str, conflict_ok: bool) -> None:
        async with self._session.post(f"{self._endpoint}/{table}", data=body, headers=self._headers(table)) as reply:
            if reply.status != 204 and not (conflict_ok and reply.status == 409):
                raise RuntimeError(f"insert into {table} answered {reply.status}: {await reply.text()}")

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> RestInserter:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.close()
