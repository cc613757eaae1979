"""A counting reverse proxy in front of Azurite (and the Event Grid webhook): every billable request, by
service, operation and kind, as the storage account would bill it.

Why at the wire and not in the app: the bill counts what reaches the service, whoever sent it (the
producer, the Functions host's listeners and leases, the app), including SDK retries and pages of a
query. The app's own view would miss the host's polling and the SDKs' hidden requests.

Billing rules applied (Azure Storage): one request is one transaction, whatever it carries: a table
entity-group transaction (`$batch`) is one, a queue Get Messages with numofmessages=32 is one, and
every page of a table query is one. A Delete of a blob is free; of a queue message or an entity it is
billed like a write.

Each connection is attributed to the process that opened it (the benchmark itself: the producer; the
runner: the Functions host; the runner's worker processes: the app) from the peer port, so the count
can say who spent what.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiohttp
import psutil
from aiohttp import web

# Headers that describe one hop, not the message (RFC 9110 §7.6.1), and the length aiohttp sets itself.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}
)
# aiohttp adds these unless told not to; a Content-Type the client did not send breaks its SharedKey signature.
AUTO_HEADERS = ("Content-Type", "User-Agent", "Accept-Encoding", "Accept")
# Below Azurite's 5 s keep-alive, so the proxy never reuses a connection Azurite has just closed.
UPSTREAM_KEEPALIVE_S = 3.0
ENTITY_KEY = re.compile(r"^(?P<table>[^(]+)\((?P<keys>.*)\)$")
EVENT_GRID_UNIT = 64 * 1024  # Event Grid bills each 64 KB of an event as one operation


@dataclass(frozen=True)
class Op:
    """One billable request as the meter classifies it."""

    service: str  # queue | table | blob | eventgrid
    name: str  # e.g. "put message", "batch", "get messages (empty)"
    kind: str  # read | write | delete | list | batch | lease | admin | deliver
    resource: str = ""  # the queue, table or container, its random test suffix shown as *


# The random parts of the benchmarks' names: a table prefix ("b" + 10 hex), a queue suffix, a floor suffix.
RANDOM_PARTS = (re.compile(r"^[bt][0-9a-f]{10}"), re.compile(r"(?<=-)[0-9a-f]{10}"), re.compile(r"[0-9a-f]{8}$"))


def _resource(segment: str) -> str:
    name = segment.split("(")[0]
    for part in RANDOM_PARTS:
        name = part.sub("*", name)
    return name


def _segments(path: str) -> list[str]:
    """Path segments after the account name (Azurite's URLs are /<account>/...)."""
    parts = [unquote(p) for p in path.split("/") if p]
    return parts[1:]


def classify_queue(method: str, path: str, query: Mapping[str, list[str]], body: bytes) -> Op:
    seg = _segments(path)
    if len(seg) >= 2 and seg[1] == "messages":
        if len(seg) == 3:
            return (
                Op("queue", "delete message", "delete")
                if method == "DELETE"
                else Op("queue", "update message", "write")
            )
        if method == "POST":
            return Op("queue", "put message", "write")
        if method == "DELETE":
            return Op("queue", "clear messages", "delete")
        if query.get("peekonly", [""])[0].lower() == "true":
            return Op("queue", "peek messages", "read")
        found = b"<QueueMessage>" in body
        return Op("queue", "get messages" if found else "get messages (empty)", "read")
    if len(seg) == 1:
        names = {"PUT": "create queue", "DELETE": "delete queue"}
        return Op("queue", names.get(method, "queue metadata"), "admin")
    return Op("queue", "list queues" if "list" in query.get("comp", []) else "service", "list")


def classify_table(method: str, path: str) -> Op:
    seg = _segments(path)
    head = seg[0] if seg else ""
    if head == "$batch":
        return Op("table", "batch", "batch")
    if head == "Tables" or head.startswith("Tables("):
        names = {"POST": "create table", "DELETE": "delete table"}
        return Op("table", names.get(method, "query tables"), "admin")
    match = ENTITY_KEY.match(head)
    if match and match.group("keys"):  # one entity, addressed by its keys
        if method == "GET":
            return Op("table", "get entity", "read")
        if method == "DELETE":
            return Op("table", "delete entity", "delete")
        return Op("table", "upsert entity" if method == "PUT" else "merge entity", "write")
    if method == "POST":
        return Op("table", "insert entity", "write")
    return Op("table", "query entities", "read")


def classify_blob(method: str, path: str, query: Mapping[str, list[str]]) -> Op:
    seg = _segments(path)
    comp = query.get("comp", [""])[0]
    if len(seg) <= 1:
        if comp == "list" or method == "GET":
            return Op("blob", "list blobs" if seg else "list containers", "list")
        names = {"PUT": "create container", "DELETE": "delete container"}
        return Op("blob", names.get(method, "container properties"), "admin")
    if comp == "lease":
        return Op("blob", "lease blob", "lease")
    if method == "DELETE":
        return Op("blob", "delete blob", "delete")
    if method in ("GET", "HEAD"):
        return Op("blob", "get blob" if method == "GET" else "blob properties", "read")
    return Op("blob", "put blob" if not comp else f"put {comp}", "write")


@dataclass
class Tally:
    """Counts by (op, actor) and the bytes moved, safe to read from another thread via `snapshot`."""

    counts: Counter[tuple[Op, str]] = field(default_factory=Counter)
    bytes_in: int = 0
    bytes_out: int = 0
    events: int = 0  # Event Grid: events delivered
    event_units: int = 0  # Event Grid: 64 KB units delivered
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, op: Op, actor: str, sent: int, received: int) -> None:
        with self.lock:
            self.counts[(op, actor)] += 1
            self.bytes_in += sent
            self.bytes_out += received

    def add_events(self, events: int, units: int) -> None:
        with self.lock:
            self.events += events
            self.event_units += units

    def snapshot(self) -> Snapshot:
        with self.lock:
            return Snapshot(Counter(self.counts), self.bytes_in, self.bytes_out, self.events, self.event_units)


@dataclass(frozen=True)
class Snapshot:
    counts: Counter[tuple[Op, str]]
    bytes_in: int = 0
    bytes_out: int = 0
    events: int = 0
    event_units: int = 0

    def __sub__(self, earlier: Snapshot) -> Snapshot:
        counts = Counter(self.counts)
        counts.subtract(earlier.counts)
        return Snapshot(
            +counts,
            self.bytes_in - earlier.bytes_in,
            self.bytes_out - earlier.bytes_out,
            self.events - earlier.events,
            self.event_units - earlier.event_units,
        )

    def total(self, service: str | None = None, actor: str | None = None) -> int:
        return sum(
            n
            for (op, who), n in self.counts.items()
            if (service is None or op.service == service) and (actor is None or who == actor)
        )

    def only(self, actor: str) -> Snapshot:
        """The requests of one actor (Event Grid figures are kept whole)."""
        counts = Counter({key: n for key, n in self.counts.items() if key[1] == actor})
        return Snapshot(counts, self.bytes_in, self.bytes_out, self.events, self.event_units)

    def by(self, key: Callable[[Op, str], str]) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (op, who), n in self.counts.items():
            out[key(op, who)] += n
        return dict(sorted(out.items()))


class Actors:
    """Which process opened a connection, from its local port: the benchmark, the host or a worker."""

    def __init__(self) -> None:
        self._producer = psutil.Process().pid
        self._roots: dict[int, str] = {}
        self._lock = threading.Lock()

    def watch(self, pid: int, name: str) -> None:
        with self._lock:
            self._roots[pid] = name

    def of_port(self, port: int) -> str:
        with self._lock:
            roots = dict(self._roots)
        candidates: list[tuple[str, int]] = []
        for pid, name in roots.items():  # the runners and their workers, before the benchmark that started them
            with contextlib.suppress(psutil.Error):
                candidates += [(name, pid)] + [(f"{name} worker", c.pid) for c in psutil.Process(pid).children(True)]
        for who, pid in [*candidates, ("producer", self._producer)]:
            with contextlib.suppress(psutil.Error):
                if any(c.laddr and c.laddr.port == port for c in psutil.Process(pid).net_connections("tcp")):
                    return who
        return "unknown"


class CountingProxy:
    """Reverse proxies on loopback ports, in a thread of their own (the benchmark blocks its own loop
    while a runner starts, and the host talks to storage meanwhile)."""

    def __init__(
        self, upstreams: Mapping[str, int], classify: Callable[[str, str, str, Any, bytes], Op | None]
    ) -> None:
        self.tally = Tally()
        self.actors = Actors()
        self._upstreams = dict(upstreams)
        self._classify = classify
        self.ports: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="counting-proxy", daemon=True)
        self._runners: list[web.AppRunner] = []
        self._session: aiohttp.ClientSession | None = None
        self._by_connection: weakref.WeakKeyDictionary[asyncio.Transport, str] = weakref.WeakKeyDictionary()

    def start(self) -> CountingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=UPSTREAM_KEEPALIVE_S)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        for service, upstream in self._upstreams.items():
            await self._serve(service, upstream)

    def add(self, service: str, upstream: int) -> int:
        """Proxy one more upstream (e.g. the runner's webhook, known once it runs); returns its port."""
        self._upstreams[service] = upstream
        asyncio.run_coroutine_threadsafe(self._serve(service, upstream), self._loop).result(30)
        return self.ports[service]

    async def _serve(self, service: str, upstream: int) -> None:
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._forwarder(service, upstream))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runners.append(runner)
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.ports[service] = int(server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _forwarder(self, service: str, upstream: int) -> Callable[[web.Request], Any]:
        async def forward(request: web.Request) -> web.StreamResponse:
            assert self._session is not None
            body = await request.read()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
            url = f"http://127.0.0.1:{upstream}{request.rel_url}"
            async with self._session.request(
                request.method, url, headers=headers, data=body, allow_redirects=False, skip_auto_headers=AUTO_HEADERS
            ) as answer:
                payload = await answer.read()
                out = web.Response(status=answer.status, body=payload)
                for key, value in answer.headers.items():
                    if key.lower() not in HOP_BY_HOP:
                        out.headers.add(key, value)
            actor = await self._actor_of(request.transport)
            split = urlsplit(str(request.rel_url))
            op = self._classify(service, request.method, split.path, parse_qs(split.query), payload)
            if op is not None:
                self.tally.add(op, actor, len(body), len(payload))
            if service.startswith("webhook") and request.method == "POST" and "eventgrid" in split.path:
                self.tally.add_events(*_event_units(body))
            return out

        return forward

    async def _actor_of(self, transport: asyncio.Transport | None) -> str:
        """Who opened this connection, looked up once per connection (a port is reused by others later)."""
        if transport is None:
            return "unknown"
        actor = self._by_connection.get(transport)
        if actor is None:
            peer = transport.get_extra_info("peername")
            actor = await asyncio.to_thread(self.actors.of_port, int(peer[1])) if peer else "unknown"
            if actor != "unknown":
                self._by_connection[transport] = actor
        return actor

    def connection_string(self, original: str) -> str:
        """The same account through the proxy's ports."""
        out = original
        for service in ("blob", "queue", "table"):
            upstream = self._upstreams.get(service)
            if upstream is not None and service in self.ports:
                out = out.replace(f":{upstream}/", f":{self.ports[service]}/")
        return out

    @contextlib.contextmanager
    def measuring(self) -> Iterator[list[Snapshot]]:
        """Counts between entering and leaving, appended to the yielded list on exit."""
        before = self.tally.snapshot()
        found: list[Snapshot] = []
        yield found
        found.append(self.tally.snapshot() - before)


def _event_units(body: bytes) -> tuple[int, int]:
    """Events in one Event Grid delivery and their 64 KB billing units (each event counted alone)."""
    try:
        events = json.loads(body)
    except ValueError:
        return 0, 0
    batch = events if isinstance(events, list) else [events]
    sizes = [len(json.dumps(event).encode()) for event in batch]
    return len(batch), sum(-(-size // EVENT_GRID_UNIT) for size in sizes)


def classify(service: str, method: str, path: str, query: Any, body: bytes) -> Op | None:
    """Storage requests by their service's rules; Event Grid deliveries to the webhook as operations."""
    seg = _segments(path)
    resource = _resource(seg[0]) if seg else ""
    if service == "queue":
        return replace(classify_queue(method, path, query, body), resource=resource)
    if service == "table":
        return replace(classify_table(method, path), resource=resource)
    if service == "blob":
        return replace(classify_blob(method, path, query), resource=resource)
    if "eventgrid" in path and method == "POST":
        return Op("eventgrid", "delivery", "deliver")
    return None  # other HTTP to the runner (admin status): not billable here
