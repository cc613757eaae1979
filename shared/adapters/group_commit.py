"""Upserts into one partition, written together: one entity-group transaction for many callers.

Why: every sent message adds an entry to the due-time index, and all entries share one partition.
One request per entry costs a storage transaction (billed, and about a millisecond of CPU on each
side) for a few hundred bytes. Callers that arrive while a write is in flight wait for the next
write, which takes all of them (up to the 100 operations a transaction allows). Nobody waits for a
timer: a lone caller is written at once, so batches form only under load, where they pay.

Each caller still returns only after its entity is stored, and a failed write fails every caller
in it, so the guarantees of a plain upsert hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.adapters.tables import Entity, Op, TableStore
from shared.errors import EtagMismatch, TransientError
from shared.schema import keys_of, row_key_entity

MAX_OPERATIONS = 100  # Table Storage's limit for one entity-group transaction


@dataclass
class _Waiting:
    entity: Entity
    callers: list[asyncio.Future[None]] = field(default_factory=list)


class GroupUpserts:
    """Merge-upserts into one partition of `table`, coalesced while a write is in flight."""

    def __init__(self, table: TableStore, partition: str) -> None:
        self._table = table
        self._partition = partition
        self._waiting: dict[str, _Waiting] = {}  # by RowKey: a key may appear once per transaction
        self._writer: asyncio.Task[None] | None = None

    async def upsert(self, entity: Mapping[str, Any]) -> None:
        """Store `entity` (its PartitionKey must be this writer's) and return once it is stored."""
        partition, key = keys_of(entity)
        if partition != self._partition:
            raise ValueError(f"entity belongs to partition {partition!r}, not {self._partition!r}")
        done = asyncio.get_running_loop().create_future()
        waiting = self._waiting.get(key)
        if waiting is None:
            waiting = self._waiting[key] = _Waiting(dict(entity))
        else:  # the same key twice before a write: one merge of both, as two upserts would leave it
            waiting.entity |= entity
        waiting.callers.append(done)
        if self._writer is None:
            # A task of its own, so a caller that is cancelled never strands the others.
            self._writer = asyncio.get_running_loop().create_task(self._write_all())
        await done

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                batch = [self._waiting.pop(key) for key in list(self._waiting)[:MAX_OPERATIONS]]
                try:
                    await self._write(batch)
                except Exception as exc:  # handed to every caller of this write, who raise it
                    _settle(batch, exc)
                except BaseException:  # the loop is closing: nobody may be left waiting
                    _settle(batch, TransientError("the grouped write was cancelled"))
                    raise
                else:
                    _settle(batch, None)
        finally:
            if self._waiting:
                _settle(list(self._waiting.values()), TransientError("the grouped write was cancelled"))
                self._waiting.clear()
            self._writer = None

    async def _write(self, batch: list[_Waiting]) -> None:
        if len(batch) == 1:  # a plain request costs the SDK far less than a one-operation batch
            await self._table.upsert(batch[0].entity)
        else:
            await self._table.transact([Op("upsert", waiting.entity) for waiting in batch])


def _settle(batch: list[_Waiting], error: Exception | None) -> None:
    for waiting in batch:
        for caller in waiting.callers:
            if caller.done():  # its caller was cancelled
                continue
            if error is None:
                caller.set_result(None)
            else:
                caller.set_exception(error)


async def delete_rows(table: TableStore, partition: str, row_keys: Sequence[str]) -> None:
    """Delete rows of one partition, up to 100 per entity-group transaction (one billed request instead of
    one each). A batch with a row already gone (someone else deleted it) fails whole, as the service
    refuses it: that batch then goes one by one, where a missing row is no error."""
    for start in range(0, len(row_keys), MAX_OPERATIONS):
        chunk = row_keys[start : start + MAX_OPERATIONS]
        if len(chunk) > 1:
            try:
                await table.transact([Op("delete", row_key_entity(partition, key)) for key in chunk])
                continue
            except EtagMismatch:
                pass
        for key in chunk:
            await table.delete(partition, key)
