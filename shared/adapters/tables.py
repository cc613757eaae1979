"""Table Storage access behind a small port: insert-if-absent, etag-guarded updates, transactions.

Why a wrapper: services speak in entities (dicts) and our own outcomes (`Conflict`, `EtagMismatch`,
from `shared.errors`), never in SDK exceptions, and every call maps storage failures to TransientError
in one place.

Writes of one entity (insert, update, upsert, delete) send the request the SDK's own operation builder
makes (`table_batch.operation_requests`: method, URL, headers, the entity's JSON with its EDM types)
through the table client's own pipeline (credential, retry, transport), and read the status and etag
themselves: the SDK's generic serializer and response deserializer around the same request cost about
0.6 ms of CPU a write, a third of the write (measured on this project's 2-CPU machine), and a message
makes about four. End to end (`make bench`, pass 4 in the README) the saving did not show beyond this
machine's noise: most of a message's cost is Azurite's. Reads and queries stay the SDK's (its
typed-value decoding is what callers get).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.adapters import table_batch
from shared.errors import (
    Conflict,
    ContactMessagesError,
    EtagMismatch,
    PermanentError,
    StorageUnreachable,
    TransientError,
)
from shared.schema import keys_of, row_key_entity

Entity = dict[str, Any]


@dataclass(frozen=True)
class Stored:
    """An entity as read, with the etag that guards the next update."""

    entity: Entity
    etag: str


@dataclass(frozen=True)
class Op:
    """One operation of an entity-group transaction (same partition)."""

    kind: str  # "create" | "merge" | "replace" | "upsert" | "delete"
    entity: Entity
    etag: str | None = None


def _storage_error(exc: Exception) -> ContactMessagesError:
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return StorageUnreachable(f"storage unreachable: {type(exc).__name__}")
    if isinstance(exc, HttpResponseError) and (exc.status_code or 500) >= 500:
        return TransientError(f"storage answered {exc.status_code}")
    if isinstance(exc, HttpResponseError) and exc.status_code in {408, 429}:
        return TransientError(f"storage answered {exc.status_code}")
    return PermanentError(f"storage refused the operation: {type(exc).__name__} {getattr(exc, 'status_code', '')}")


def _where(entity: Mapping[str, Any]) -> str:
    return "/".join(keys_of(entity))


def _clean(entity: Mapping[str, Any]) -> Entity:
    return {k: v for k, v in entity.items() if v is not None}


class TableStore:
    """One table. Methods raise Conflict, EtagMismatch, TransientError or PermanentError only."""

    def __init__(self, client: TableClient) -> None:
        self._client = client
        self.name = client.table_name

    async def create_if_missing(self) -> None:
        try:
            await self._client.create_table()
        except ResourceExistsError:
            return
        except (HttpResponseError, ServiceRequestError) as exc:
            raise _storage_error(exc) from exc

    async def get(self, partition: str, row: str, select: Sequence[str] | None = None) -> Stored | None:
        """One entity by its keys (with `select`, only those columns of it); None if there is none."""
        try:
            entity = await self._client.get_entity(partition, row, select=list(select) if select else None)
        except ResourceNotFoundError:
            return None
        except (HttpResponseError, ServiceRequestError) as exc:
            raise _storage_error(exc) from exc
        return Stored(entity=dict(entity), etag=str(entity.metadata["etag"]))

    async def insert(self, entity: Mapping[str, Any]) -> str:
        """Insert if absent; raise Conflict when the key exists."""
        status, etag, code = await self._write(("create", _clean(entity)))
        if status == 409:
            raise Conflict(f"{_where(entity)} exists")
        return _written(status, etag, code)

    async def update(self, entity: Mapping[str, Any], etag: str, *, replace: bool = False) -> str:
        """Merge (or with `replace`, replace) `entity` only if unchanged since `etag` ("*": any); raise
        EtagMismatch otherwise (a row that is gone included)."""
        mode = UpdateMode.REPLACE if replace else UpdateMode.MERGE
        options = {"mode": mode, "etag": etag, "match_condition": MatchConditions.IfNotModified}
        status, new_etag, code = await self._write(("update", _clean(entity), options))
        if status in {404, 412}:
            raise EtagMismatch(f"{_where(entity)} changed")
        return _written(status, new_etag, code)

    async def upsert(self, entity: Mapping[str, Any], replace: bool = False) -> None:
        mode = UpdateMode.REPLACE if replace else UpdateMode.MERGE
        status, etag, code = await self._write(("upsert", _clean(entity), {"mode": mode}))
        _written(status, etag, code)

    async def delete(self, partition: str, row: str) -> None:
        status, etag, code = await self._write(("delete", row_key_entity(partition, row)))
        if status != 404:  # already gone is what a delete wants
            _written(status, etag, code)

    async def _write(self, operation: tuple[Any, ...]) -> tuple[int, str, str]:
        """Send one write as the SDK builds it; (status, new etag, error code)."""
        try:
            request = table_batch.operation_requests(self._client, [operation])[0]
        except (TypeError, ValueError) as exc:  # the SDK refused a value before sending anything
            raise PermanentError(f"entity not storable: {exc}") from exc
        if request.method == "POST":
            request.headers["Prefer"] = "return-no-content"  # the etag is all an insert needs back
        try:
            response = await self._client._client.send_request(request)
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            raise _storage_error(exc) from exc
        if 200 <= response.status_code < 300:
            return response.status_code, str(response.headers.get("etag", "")), ""
        return response.status_code, "", table_batch.PartResult(response.status_code, body=response.content).error_code

    async def query(
        self, query_filter: str, parameters: Mapping[str, Any] | None = None, select: list[str] | None = None
    ) -> AsyncIterator[Entity]:
        try:
            pages = self._client.query_entities(query_filter, parameters=dict(parameters or {}), select=select)
            async for entity in pages:
                yield dict(entity)
        except (HttpResponseError, ServiceRequestError) as exc:
            raise _storage_error(exc) from exc

    async def transact(self, ops: Sequence[Op]) -> list[str]:
        """Run `ops` atomically in one partition and return the new etag of each; Conflict if a create
        hit an existing row, EtagMismatch if a guarded update lost a race. The envelope is written by
        `table_batch` (the SDK's costs several times the request itself); the operations are the SDK's."""
        try:
            return await table_batch.submit(self._client, [_batch_op(op) for op in ops])
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            raise _storage_error(exc) from exc
        except (TypeError, ValueError) as exc:  # the SDK refused a value before sending anything
            raise PermanentError(f"entity not storable: {exc}") from exc


def _written(status: int, etag: str, code: str) -> str:
    """The etag of a write that succeeded; any other answer (the caller has taken the ones it expects,
    a 409 or a 412) as one of the two branches, as `_storage_error` maps the SDK's exceptions."""
    if 200 <= status < 300:
        return etag
    if status >= 500 or status in {408, 429}:
        raise TransientError(f"storage answered {status} {code}".strip())
    raise PermanentError(f"storage refused the operation: {status} {code}".strip())


def _batch_op(op: Op) -> Any:
    if op.kind in ("merge", "replace") and op.etag:
        mode = UpdateMode.REPLACE if op.kind == "replace" else UpdateMode.MERGE
        options = {"mode": mode, "etag": op.etag, "match_condition": MatchConditions.IfNotModified}
        return ("update", _clean(op.entity), options)
    if op.kind == "merge":
        return ("update", _clean(op.entity), {"mode": UpdateMode.MERGE})
    return (op.kind, _clean(op.entity))
