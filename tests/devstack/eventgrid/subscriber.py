"""A real webhook subscriber for the local topic's tests: it takes part in both validation handshakes,
answers scripted statuses per path, and records every request with its arrival time.

Why not the ACS tests' `Receiver`: a feed subscriber must answer the handshakes (the validation event
and the CloudEvents OPTIONS request), and the retry tests need arrival times per subscription.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from devstack.acs.loopthread import LoopThread


@dataclass(frozen=True)
class Arrival:
    """One delivery request: when it came, its headers, its events (a single object becomes a list)."""

    at: float
    headers: dict[str, str]
    events: list[dict[str, Any]]
    single_object: bool
    size: int
    answered: int


@dataclass
class Hook:
    """What one path does: handshake behaviour and the statuses to answer next."""

    script: deque[int]
    agree: bool = True
    echo_code: bool = True


class Subscriber:
    def __init__(self) -> None:
        self._hooks: dict[str, Hook] = defaultdict(lambda: Hook(deque()))
        self._arrivals: dict[str, list[Arrival]] = defaultdict(list)
        self._handshakes: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._runner: web.AppRunner | None = None
        self.base = ""
        self._thread = LoopThread("feed-subscriber", self._start, self._stop)

    def start(self) -> Subscriber:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._thread.stop()

    def url(self, path: str) -> str:
        return f"{self.base}/hooks/{path}"

    def configure(
        self, path: str, *, statuses: tuple[int, ...] = (), agree: bool = True, echo_code: bool = True
    ) -> None:
        """Answer the next requests on `path` with `statuses` (then 200); refuse or ignore handshakes."""

        def run() -> None:
            self._hooks[path] = Hook(deque(statuses), agree, echo_code)

        self._thread.call(run)

    def arrivals(self, path: str) -> list[Arrival]:
        return self._thread.call(lambda: list(self._arrivals[path]))

    def handshakes(self, path: str) -> list[dict[str, Any]]:
        return self._thread.call(lambda: list(self._handshakes[path]))

    def delivered(self, path: str) -> list[dict[str, Any]]:
        """Events in requests answered 2xx, in arrival order."""
        return [event for a in self.arrivals(path) if 200 <= a.answered < 300 for event in a.events]

    async def _options(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        self._handshakes[path].append({"method": "OPTIONS", "headers": dict(request.headers)})
        if not self._hooks[path].agree:
            return web.Response(status=200)
        origin = request.headers.get("WebHook-Request-Origin", "")
        return web.Response(status=200, headers={"WebHook-Allowed-Origin": origin, "Allow": "POST, OPTIONS"})

    async def _post(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        raw = await request.read()
        body = json.loads(raw)
        hook = self._hooks[path]
        if request.headers.get("aeg-event-type") == "SubscriptionValidation":
            self._handshakes[path].append({"method": "POST", "headers": dict(request.headers), "body": body})
            if not (hook.agree and hook.echo_code):
                return web.Response(status=200)
            return web.json_response({"validationResponse": body[0]["data"]["validationCode"]})
        status = hook.script.popleft() if hook.script else 200
        events = [body] if isinstance(body, dict) else body
        arrival = Arrival(time.monotonic(), dict(request.headers), events, isinstance(body, dict), len(raw), status)
        self._arrivals[path].append(arrival)
        return web.Response(status=status)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("OPTIONS", "/hooks/{path}", self._options)
        app.router.add_post("/hooks/{path}", self._post)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
