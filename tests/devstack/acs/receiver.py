"""A real aiohttp webhook that records what the emulator delivers, for the webhook tests.

Why not a mock: the point is to see the exact HTTP requests (headers, JSON array bodies, retries)
that Event Grid's imitation sends, so the receiver is a real server on its own loop thread. It can
also hold requests unanswered, like a busy function app, so tests can pile events up behind them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from devstack.acs.loopthread import LoopThread


@dataclass(frozen=True)
class Delivery:
    """One POST the receiver got, and the status it answered."""

    headers: dict[str, str]
    events: list[dict[str, Any]]
    answered: int
    size: int

    @property
    def event(self) -> dict[str, Any]:
        """The single event of the delivered array (one per request unless batching is on)."""
        assert len(self.events) == 1
        return self.events[0]


class Receiver:
    """Records deliveries; answers 200 unless told to answer other statuses first."""

    def __init__(self) -> None:
        self._deliveries: list[Delivery] = []
        self._script: deque[int] = deque()
        self._delay = 0.0
        self._open = asyncio.Event()
        self._open.set()
        self._in_flight = 0
        self._runner: web.AppRunner | None = None
        self.url = ""
        self._thread = LoopThread("webhook-receiver", self._start, self._stop)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._thread.stop()

    def respond_with(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, then 200 again."""
        self._thread.call(lambda: self._script.extend(statuses))

    def answer_after(self, seconds: float) -> None:
        """Hold every answer for `seconds`, like a slow function app."""

        def run() -> None:
            self._delay = seconds

        self._thread.call(run)

    def hold(self) -> None:
        """Leave every request unanswered until `release()`, like a function app that is busy."""
        self._thread.call(self._open.clear)

    def release(self) -> None:
        self._thread.call(self._open.set)

    def in_flight(self) -> int:
        """Requests received and not answered yet."""
        return self._thread.call(lambda: self._in_flight)

    def clear(self) -> None:
        def run() -> None:
            self._deliveries.clear()
            self._script.clear()
            self._delay = 0.0
            self._open.set()

        self._thread.call(run)

    def deliveries(self) -> list[Delivery]:
        return self._thread.call(lambda: list(self._deliveries))

    def events(self) -> list[dict[str, Any]]:
        """Every delivered event that was answered with a 2xx, in arrival order (batches flattened)."""
        return [event for d in self.deliveries() if 200 <= d.answered < 300 for event in d.events]

    def events_for(self, message_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if _data(e).get("messageId") == message_id]

    def wait_events(self, message_id: str, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Poll until `count` events about `message_id` have arrived (more would fail the caller's asserts)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.events_for(message_id)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} events arrived within {timeout} s")
            time.sleep(0.02)

    async def _handle(self, request: web.Request) -> web.Response:
        status = self._script.popleft() if self._script else 200
        raw = await request.read()
        self._in_flight += 1
        try:
            await self._open.wait()
            await asyncio.sleep(self._delay)
        finally:
            self._in_flight -= 1
        self._deliveries.append(Delivery(dict(request.headers), json.loads(raw), status, len(raw)))
        return web.Response(status=status)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/runtime/webhooks/eventgrid", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/runtime/webhooks/eventgrid?functionName=record_event"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _data(event: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = event.get("data") or {}
    return data
