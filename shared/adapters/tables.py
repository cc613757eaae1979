"""Table Storage access behind a small port: insert-if-absent, etag-guarded updates, transactions.

Why a wrapper: services speak in entities (dicts) and our own outcomes (`Conflict`, `EtagMismatch`,
from `shared.errors`), never in SDK exceptions, and every call maps storage failures to TransientError
in one place.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
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
from shared.schema import keys_of

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

    async def get(self, partition: str, row: str) -> Stored | None:
        try:
            entity = await self._client.get_entity(partition, row)
        except ResourceNotFoundError:
            return None
        except (HttpResponseError, ServiceRequestError) as exc:
            raise _storage_error(exc) from exc
        return Stored(entity=dict(entity), etag=str(entity.metadata["etag"]))

    async def insert(self, entity: Mapping[str, Any]) -> str:
        """Insert if absent; raise Conflict when the key exists."""
        try:
            result = await self._client.create_entity(_clean(entity))
        except ResourceExistsError as exc:
            raise Conflict(f"{_where(entity)} exists") from exc
        except (HttpResponseError, ServiceRequestError) as exc:
            raise _storage_error(exc) from exc
        except (TypeError, ValueError) as exc:
            raise PermanentError(f"entity not storable: {exc}") from exc
        return str(result.get("etag", ""))

    async def update(self, entity: Mapping[str, Any], etag: str, *, replace: bool = False) -> str:
        """Merge (or with `replace`, replace) `entity` only if unchanged since `etag` ("*": any); raise
        EtagMismatch otherwise."""
        mode = UpdateMode.REPLACE if replace else UpdateMode.MERGE
        try:
            result = await self._client.update_entity(
                _clean(entity), mode=mode, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise EtagMismatch(f"{_where(entity)} changed") from exc
        except HttpResponseError as exc:
            if exc.status_code == 412:
                raise EtagMismatch(f"{_where(entity)} changed") from exc
            raise _storage_error(exc) from exc
        except ServiceRequestError as exc:
            raise _storage_error(exc) from exc
        return str(result.get("etag", ""))

    async def upsert(self, entity: Mapping[str, Any], replace: bool = False) -> None:
        mode = UpdateMode.REPLACE if replace else UpdateMode.MERGE
        try:
            await self._client.upsert_entity(_clean(entity), mode=mode)
        except (HttpResponseError, ServiceRequestError) as exc:
            raise _storage_error(exc) from exc

    async def delete(self, partition: str, row: str) -> None:
        try:
            await self._client.delete_entity(partition, row)
        except ResourceNotFoundError:
            return
        except (HttpResponseError, ServiceRequestError) as exc:
            raise _storage_error(exc) from exc

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


def _batch_op(op: Op) -> Any:
    if op.kind in ("merge", "replace") and op.etag:
        mode = UpdateMode.REPLACE if op.kind == "replace" else UpdateMode.MERGE
        options = {"mode": mode, "etag": op.etag, "match_condition": MatchConditions.IfNotModified}
        return ("update", _clean(op.entity), options)
    if op.kind == "merge":
        return ("update", _clean(op.entity), {"mode": UpdateMode.MERGE})
    return (op.kind, _clean(op.entity))
