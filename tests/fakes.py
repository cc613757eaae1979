"""In-memory stand-ins for the app's ports, for unit tests that need no Azurite, emulator or network.

- `MemoryTable` is a `TableStore` over a dict: the same async methods, the same outcomes (`Conflict`
  when an insert finds the row, `EtagMismatch` when a guarded write lost a race or the row is gone),
  a new etag on every write, and entity-group transactions that apply all of their operations or none.
  `query` understands the filters the app writes: comparisons joined by `and`, with `@name` parameters
  or quoted literals. Anything else raises, so a new kind of filter is noticed, not silently matched.
- `MemoryQueue` and `MemoryPayloads` stand for the send queue and the claim-check blob container.
- `MemoryStorage` hands them out by name, as `StorageClients` does, so the composition root
  (`shared.runtime.build_services`) wires the real services over them (`memory_services`).
- `ScriptedProvider` answers each send as the test scripted it and records every call.
- `Pause`: every storage and provider call awaits it first, as real I/O yields to the event loop; a test
  that explores interleavings makes it yield a varying number of times. A table's `before` hook is
  awaited next with the operation's name: a test holds one task there to force an interleaving, or
  raises there to make that operation fail.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

from shared import runtime
from shared.adapters.acs import ProviderReceipt, SendIds
from shared.adapters.blobs import PayloadStore
from shared.adapters.queues import MAX_PAYLOAD_BYTES, QueueWriter, RawMessage
from shared.adapters.storage import StorageClients
from shared.adapters.tables import Entity, Op, Stored, TableStore
from shared.errors import Conflict, EtagMismatch, PermanentError
from shared.ids import operation_id
from shared.models import PAYLOAD_NAME_PATTERN
from shared.settings import Settings, load_settings
from shared.validation import CheckedRequest

Pause = Callable[[], Awaitable[None]]
Hook = Callable[[str], Awaitable[None]]
MAX_TRANSACTION_OPS = 100  # Table Storage's limit for one entity-group transaction
MAX_STRING_UNITS = 32 * 1024  # a string property holds at most 64 KiB of UTF-16
_STORABLE = (str, int, float, bool, bytes, datetime)


async def one_yield() -> None:
    """What any real I/O call does at least once: give the event loop to the other tasks."""
    await asyncio.sleep(0)


def random_yields(rng: random.Random, most: int = 3) -> Pause:
    """A pause of 0..`most` yields drawn from `rng`: tasks interleave differently for each seed."""

    async def pause() -> None:
        for _ in range(rng.randint(0, most)):
            await asyncio.sleep(0)

    return pause


# -- tables ---------------------------------------------------------------------------------------------


def _key(entity: Mapping[str, Any]) -> tuple[str, str]:
    return str(entity["PartitionKey"]), str(entity["RowKey"])


def _storable(entity: Mapping[str, Any]) -> Entity:
    """The entity as the service stores it: None values dropped (as `TableStore` does); values of a
    type a table cannot hold, or strings longer than a property holds, refused as the service refuses them."""
    clean = {k: v for k, v in entity.items() if v is not None}
    for name, value in clean.items():
        if not isinstance(value, _STORABLE):
            raise PermanentError(f"entity not storable: {name} is a {type(value).__name__}")
        if isinstance(value, str) and len(value.encode("utf-16-le", errors="surrogatepass")) // 2 > MAX_STRING_UNITS:
            raise PermanentError(f"entity not storable: {name} is longer than a property holds")
    return clean


_TERM = re.compile(r"\s*(\w+)\s+(eq|ne|lt|le|gt|ge)\s+(@\w+|'(?:[^']|'')*')\s*")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
}


def parse_filter(text: str, parameters: Mapping[str, Any]) -> Callable[[Entity], bool]:
    """A predicate for `a op b and c op d ...`; ValueError for anything else."""
    terms: list[tuple[str, str, Any]] = []
    for part in re.split(r"\s+and\s+", text.strip()):
        match = _TERM.fullmatch(part)
        if match is None:
            raise ValueError(f"filter not understood by the fake: {part!r}")
        column, op, operand = match.groups()
        value = parameters[operand[1:]] if operand.startswith("@") else operand[1:-1].replace("''", "'")
        terms.append((column, op, value))

    def matches(entity: Entity) -> bool:
        for column, op, value in terms:
            have = entity.get(column)
            # A missing property, or one of another type, matches no comparison (as in Table Storage).
            if have is None or type(have) is not type(value) or not _COMPARE[op](have, value):
                return False
        return True

    return matches


class MemoryTable(TableStore):
    """One table in memory. Methods raise Conflict, EtagMismatch or PermanentError as `TableStore` does."""

    def __init__(self, name: str, pause: Pause = one_yield) -> None:  # no SDK client behind it
        self.name = name
        self.rows: dict[tuple[str, str], tuple[Entity, str]] = {}
        self.writes = 0
        self.before: Hook | None = None
        self.selects: list[tuple[str, ...] | None] = []  # the columns each get asked for (None: all)
        self._pause = pause
        self._etags = itertools.count(1)

    async def _enter(self, op: str) -> None:
        await self._pause()
        if self.before is not None:
            await self.before(op)

    def _etag(self) -> str:
        self.writes += 1
        return f"W/\"datetime'{self.name}-{next(self._etags)}'\""

    def entity(self, partition: str, row: str) -> Entity | None:
        """The stored entity, for assertions (no pause, no copy to guard)."""
        stored = self.rows.get((partition, row))
        return None if stored is None else dict(stored[0])

    async def create_if_missing(self) -> None:
        return None

    async def get(self, partition: str, row: str, select: Sequence[str] | None = None) -> Stored | None:
        await self._enter("get")
        self.selects.append(tuple(select) if select else None)
        stored = self.rows.get((partition, row))
        if stored is None:
            return None
        entity = dict(stored[0]) if not select else {k: v for k, v in stored[0].items() if k in select}
        return Stored(entity=entity, etag=stored[1])

    async def insert(self, entity: Mapping[str, Any]) -> str:
        await self._enter("insert")
        return _insert(self.rows, _storable(entity), self._etag)

    async def update(self, entity: Mapping[str, Any], etag: str, *, replace: bool = False) -> str:
        await self._enter("update")
        return _merge(self.rows, _storable(entity), etag, self._etag, replace=replace)

    async def upsert(self, entity: Mapping[str, Any], replace: bool = False) -> None:
        await self._enter("upsert")
        _upsert(self.rows, _storable(entity), replace, self._etag)

    async def delete(self, partition: str, row: str) -> None:
        await self._enter("delete")
        self.rows.pop((partition, row), None)

    async def query(
        self, query_filter: str, parameters: Mapping[str, Any] | None = None, select: list[str] | None = None
    ) -> AsyncIterator[Entity]:
        matches = parse_filter(query_filter, parameters or {})
        await self._enter("query")
        for key in sorted(self.rows):  # Table Storage returns rows in PartitionKey, RowKey order
            stored = self.rows.get(key)
            if stored is not None and matches(stored[0]):
                entity = stored[0]
                yield {k: entity[k] for k in select if k in entity} if select else dict(entity)

    async def transact(self, ops: Sequence[Op]) -> list[str]:
        """All of `ops` or none of them, in one partition (PermanentError otherwise, as the service refuses it)."""
        await self._enter("transact")
        keys = [_key(op.entity) for op in ops]
        if not ops or len(ops) > MAX_TRANSACTION_OPS or len({p for p, _ in keys}) != 1 or len(set(keys)) != len(keys):
            raise PermanentError("storage refused the operation: not a valid entity-group transaction")
        staged = dict(self.rows)
        etags = [_apply(staged, op, self._etag) for op in ops]
        self.rows = staged  # reached only if every operation succeeded
        return etags


def _insert(rows: dict[tuple[str, str], tuple[Entity, str]], entity: Entity, etag: Callable[[], str]) -> str:
    key = _key(entity)
    if key in rows:
        raise Conflict(f"{key[0]}/{key[1]} exists")
    new = etag()
    rows[key] = (entity, new)
    return new


def _merge(
    rows: dict[tuple[str, str], tuple[Entity, str]],
    entity: Entity,
    expected: str | None,
    etag: Callable[[], str],
    *,
    replace: bool = False,
) -> str:
    """Merge into (or with `replace`, replace) an existing row, guarded by `expected` (None or "*": any
    etag). A missing row is a mismatch too (`TableStore` maps the service's 404 on an update to
    EtagMismatch)."""
    key = _key(entity)
    stored = rows.get(key)
    if stored is None or (expected not in (None, "*") and stored[1] != expected):
        raise EtagMismatch(f"{key[0]}/{key[1]} changed")
    new = etag()
    rows[key] = (dict(entity) if replace else {**stored[0], **entity}, new)
    return new


def _upsert(
    rows: dict[tuple[str, str], tuple[Entity, str]], entity: Entity, replace: bool, etag: Callable[[], str]
) -> str:
    key = _key(entity)
    stored = rows.get(key)
    merged = entity if replace or stored is None else {**stored[0], **entity}
    new = etag()
    rows[key] = (merged, new)
    return new


def _apply(rows: dict[tuple[str, str], tuple[Entity, str]], op: Op, etag: Callable[[], str]) -> str:
    entity = _storable(op.entity)
    if op.kind == "create":
        return _insert(rows, entity, etag)
    if op.kind in ("merge", "replace"):
        return _merge(rows, entity, op.etag, etag, replace=op.kind == "replace")
    if op.kind == "upsert":
        return _upsert(rows, entity, False, etag)
    if op.kind == "delete":
        if rows.pop(_key(entity), None) is None:
            raise EtagMismatch(f"{_key(entity)} not found")  # the service's ResourceNotFound in a batch
        return ""
    raise PermanentError(f"unknown transaction operation {op.kind!r}")


# -- queue and blobs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Queued:
    body: str
    delay_seconds: float


class MemoryQueue(QueueWriter):
    """The send queue: what was enqueued, and with what delay."""

    def __init__(self, name: str, pause: Pause = one_yield) -> None:
        self.name = name
        self.sent: list[Queued] = []
        self._pause = pause
        self._ids = itertools.count(1)

    async def create_if_missing(self) -> None:
        return None

    async def send(self, body: str, delay_seconds: float = 0) -> str:
        await self._pause()
        if len(body.encode()) > MAX_PAYLOAD_BYTES:
            raise PermanentError(f"message is larger than the queue limit of {MAX_PAYLOAD_BYTES} bytes")
        self.sent.append(Queued(body, delay_seconds))
        return f"q-{next(self._ids)}"

    async def receive(self, count: int, visibility_seconds: int = 30) -> list[RawMessage]:
        raise NotImplementedError("the unit tests read `sent`")

    async def delete(self, message: RawMessage) -> None:
        raise NotImplementedError("the unit tests read `sent`")

    async def depth(self) -> int:
        return len(self.sent)

    async def close(self) -> None:
        return None


class MemoryPayloads(PayloadStore):
    def __init__(self, pause: Pause = one_yield) -> None:
        self.blobs: dict[str, str] = {}
        self._pause = pause

    async def put(self, name: str, text: str) -> None:
        await self._pause()
        self.blobs[name] = text

    async def get(self, name: str) -> str:
        await self._pause()
        if not re.fullmatch(PAYLOAD_NAME_PATTERN, name):
            raise PermanentError("not a payload name this app writes")
        if name not in self.blobs:
            raise PermanentError(f"payload {name} is gone (purged by retention or never stored)")
        return self.blobs[name]

    async def delete(self, name: str) -> None:
        await self._pause()
        self.blobs.pop(name, None)

    async def close(self) -> None:
        return None


class MemoryStorage(StorageClients):
    """Tables, queues and the payload container by name, as `StorageClients` hands them out. Two service
    graphs built over one `MemoryStorage` are two instances of the app sharing one storage account."""

    def __init__(self, pause: Pause = one_yield) -> None:  # no SDK clients behind it
        self.pause = pause
        self.tables_by_name: dict[str, MemoryTable] = {}
        self.queues_by_name: dict[str, MemoryQueue] = {}
        self.blob_store = MemoryPayloads(self._pause)

    async def _pause(self) -> None:
        await self.pause()  # looked up at each call, so a test may change it after building

    def table(self, name: str) -> MemoryTable:
        return self.tables_by_name.setdefault(name, MemoryTable(name, self._pause))

    def queue(self, name: str) -> MemoryQueue:
        return self.queues_by_name.setdefault(name, MemoryQueue(name, self._pause))

    def payloads(self, container: str) -> MemoryPayloads:
        return self.blob_store

    async def close(self) -> None:
        return None


# -- the provider ---------------------------------------------------------------------------------------

Answer = str | Exception  # a provider message id for a success, or what the send raises


@dataclass(frozen=True)
class SendCall:
    message_id: str
    channel: str
    repeatability_id: str
    first_sent: datetime
    operation_id: str
    reached_acs: bool  # ACS acted on it (a success, or a failure that may have sent)


@dataclass
class ScriptedProvider:
    """A `Provider` whose answers the test scripts, in order. Once the script is spent every send
    succeeds with a fresh id, and an email status query answers as ACS would: "Running" for an
    operation whose send reached it (answered with success or a lost response), else None (404)."""

    sends: list[Answer] = field(default_factory=list)
    email_statuses: list[str | Exception | None] = field(default_factory=list)
    pause: Pause = one_yield
    calls: list[SendCall] = field(default_factory=list)
    status_queries: list[str] = field(default_factory=list)
    received: set[str] = field(default_factory=set)  # operation ids of email sends that reached ACS
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    async def send(self, checked: CheckedRequest, ids: SendIds) -> ProviderReceipt:
        await self.pause()  # the request on its way
        answer = self.sends.pop(0) if self.sends else f"acs-{next(self._ids)}"
        operation = operation_id(checked.message_id)
        reached = not isinstance(answer, Exception) or bool(getattr(answer, "may_have_sent", False))
        call = SendCall(
            checked.message_id, checked.channel.value, ids.repeatability_id, ids.first_sent, operation, reached
        )
        self.calls.append(call)
        if reached:
            self.received.add(operation)
        if isinstance(answer, Exception):
            raise answer
        return ProviderReceipt(answer)

    async def email_status(self, operation_id: str) -> str | None:
        self.status_queries.append(operation_id)
        await self.pause()
        if self.email_statuses:
            answer = self.email_statuses.pop(0)
        else:
            answer = "Running" if operation_id in self.received else None
        if isinstance(answer, Exception):
            raise answer
        return answer

    def acted_on(self, message_id: str) -> int:
        """How many sends of one message ACS acted on, counting those it deduplicates (the same
        repeatability id: SMS and WhatsApp) once. Email has no such de-duplication: each send counts."""
        calls = [call for call in self.calls if call.message_id == message_id and call.reached_acs]
        if calls and calls[0].channel == "email":
            return len(calls)
        return len({call.repeatability_id for call in calls})

    async def close(self) -> None:
        return None

    def sent_ids(self, message_id: str) -> list[str]:
        """The repeatability ids of every send of one message, in order."""
        return [call.repeatability_id for call in self.calls if call.message_id == message_id]


# -- time and wiring ------------------------------------------------------------------------------------

SMS_SENDER = "+18005550100"
EMAIL_SENDER = "noreply@contoso.example"
WHATSAPP_CHANNEL = "6b36a8e2-0000-4000-8000-000000000001"
ACS_TOPIC = "/subscriptions/0/resourcegroups/rg/providers/microsoft.communication/communicationservices/acs"


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def unit_settings(**overrides: str) -> Settings:
    """Settings that name no reachable service: nothing in a unit test connects anywhere."""
    env = {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "ACS_CONNECTION_STRING": "endpoint=https://acs.invalid/;accesskey=dW5pdA==",
        "ACS_RESOURCE_IDS": ACS_TOPIC,
        "SMS_SENDERS": SMS_SENDER,
        "EMAIL_SENDERS": EMAIL_SENDER,
        "WHATSAPP_CHANNELS": WHATSAPP_CHANNEL,
        "RATE_LIMITS": '{"sms": 60000, "email": 60000, "whatsapp": 60000}',
        "CONSENT_HASH_KEY": "unit-key",
        **overrides,
    }
    return load_settings(env)


@contextmanager
def _storage_is(storage: MemoryStorage) -> Iterator[None]:
    with mock.patch.object(runtime, "StorageClients", return_value=storage):
        yield


async def memory_services(
    storage: MemoryStorage, provider: ScriptedProvider, clock: FakeClock, settings: Settings | None = None
) -> runtime.Services:
    """The app's own composition root (`build_services`) over in-memory storage and a scripted provider."""
    with _storage_is(storage):
        return await runtime.build_services(settings or unit_settings(), provider=provider, clock=clock)
