"""Output bindings the host writes after a successful invocation: queue and table.

Why: the worker hands output values to the host only when the function succeeded, and the host
writes them before the invocation counts as succeeded; a failed write (e.g. a table insert hitting
`409 EntityAlreadyExists`) fails the invocation. Queue messages are encoded per `messageEncoding`;
table entities are inserted (never upserted), batched per partition, the table created on demand.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TransactionOperation
from azure.functions import meta

from devstack.host.indexer import Param
from devstack.host.settings import Settings
from devstack.host.storage import QueueWatcher, StorageClients, send_creating_queue

MAX_BATCH = 100
SUPPORTED_OUTPUTS = ("queue", "table")


class OutputBindingError(ValueError):
    """An output value the host could not write."""


@dataclass(frozen=True)
class OutputTarget:
    """An output binding with its settings resolved at startup."""

    param: str
    kind: str
    connection_string: str
    target: str
    partition_key: str | None = None
    row_key: str | None = None


def resolve_output(param: Param, settings: Settings) -> OutputTarget:
    """Resolve `%Setting%` tokens and the connection; unsupported bindings fail the function's load."""
    binding = param.binding
    if binding.type not in SUPPORTED_OUTPUTS:
        raise OutputBindingError(f"output binding type '{binding.type}' is not supported by the local runner")
    connection = settings.connection_string(binding.get("connection"))
    if binding.type == "queue":
        return OutputTarget(param.name, "queue", connection, settings.resolve(binding.get("queueName", "")).lower())
    return OutputTarget(
        param.name,
        "table",
        connection,
        settings.resolve(binding.get("tableName", "")),
        _optional(settings, binding.get("partitionKey")),
        _optional(settings, binding.get("rowKey")),
    )


def _optional(settings: Settings, value: str | None) -> str | None:
    if value is None:
        return None
    if "{" in value:
        raise OutputBindingError(f"binding expression '{value}' is not supported by the local runner")
    return settings.resolve(value)


class OutputWriter:
    def __init__(self, clients: StorageClients, watcher: QueueWatcher, message_encoding: str) -> None:
        self._clients = clients
        self._watcher = watcher
        self._encoding = message_encoding

    async def write(self, target: OutputTarget, datum: meta.Datum) -> None:
        if target.kind == "queue":
            await self._write_queue(target, datum)
        else:
            await self._write_table(target, datum)

    async def _write_queue(self, target: OutputTarget, datum: meta.Datum) -> None:
        queue = self._clients.queue(target.connection_string, target.target)
        for message in queue_messages(datum):
            await send_creating_queue(queue, encode_message(message, self._encoding))
        self._watcher.notify(queue.url)

    async def _write_table(self, target: OutputTarget, datum: meta.Datum) -> None:
        entities = [_entity(item, target) for item in _json_items(datum)]
        by_partition: dict[str, list[dict[str, Any]]] = {}
        for entity in entities:
            by_partition.setdefault(str(entity["PartitionKey"]), []).append(entity)
        table = self._clients.tables(target.connection_string).get_table_client(target.target)
        for batch in _chunks(by_partition.values()):
            operations = [(TransactionOperation.CREATE, entity) for entity in batch]
            try:
                await table.submit_transaction(operations)
            except ResourceNotFoundError:
                await _create_table(table)
                await table.submit_transaction(operations)


async def _create_table(table: Any) -> None:
    with contextlib.suppress(ResourceExistsError):
        await table.create_table()


def _chunks(groups: Iterable[list[dict[str, Any]]]) -> Iterable[list[dict[str, Any]]]:
    for group in groups:
        for start in range(0, len(group), MAX_BATCH):
            yield group[start : start + MAX_BATCH]


def queue_messages(datum: meta.Datum) -> list[str | bytes]:
    """One message per value; a JSON array (worker-encoded `List[...]`) is one message per item."""
    if datum.type == "bytes":
        return [bytes(datum.value)]
    if datum.type in ("string", "int", "double"):
        return [str(datum.value)]
    if datum.type == "json":
        parsed = json.loads(datum.value)
        items = parsed if isinstance(parsed, list) else [parsed]
        return [item if isinstance(item, str) else json.dumps(item) for item in items]
    raise OutputBindingError(f"unsupported queue output value of type {datum.type!r}")


def encode_message(message: str | bytes, encoding: str) -> str:
    raw = message.encode("utf-8") if isinstance(message, str) else message
    if encoding == "base64":
        return base64.b64encode(raw).decode("ascii")
    return raw.decode("utf-8", errors="replace")


def _json_items(datum: meta.Datum) -> list[Any]:
    text = datum.value.decode("utf-8") if isinstance(datum.value, bytes) else str(datum.value)
    parsed = json.loads(text)
    return parsed if isinstance(parsed, list) else [parsed]


def _entity(item: Any, target: OutputTarget) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise OutputBindingError("a table output value must be a JSON object or an array of objects")
    entity: dict[str, Any] = {}
    for raw_key, value in item.items():
        key = str(raw_key)
        if isinstance(value, dict | list):
            raise OutputBindingError(f"table entity property '{key}' must be a scalar value")
        canonical = {"partitionkey": "PartitionKey", "rowkey": "RowKey"}.get(key.lower(), key)
        entity[canonical] = value
    entity.setdefault("PartitionKey", target.partition_key)
    entity.setdefault("RowKey", target.row_key)
    if entity["PartitionKey"] is None or entity["RowKey"] is None:
        raise OutputBindingError("a table entity needs PartitionKey and RowKey (in the value or on the binding)")
    return entity
