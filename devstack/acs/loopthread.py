"""Run an asyncio service on its own event loop in a background thread.

Why: tests and the demo drive the emulator with the synchronous SDK clients from the main thread,
so the emulator needs a loop that keeps serving while the caller blocks. `start()` returns only once
the service is listening (or re-raises why it could not start); `call()` runs a function on the
loop, which keeps all service state single-threaded.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self, TypeVar

from devstack.loops import run_stand_in

T = TypeVar("T")


class LoopThread:
    """A daemon thread owning one event loop, with startup and shutdown coroutines."""

    def __init__(
        self,
        name: str,
        startup: Callable[[], Awaitable[None]],
        shutdown: Callable[[], Awaitable[None]],
    ) -> None:
        self._name = name
        self._startup = startup
        self._shutdown = shutdown
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: Exception | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 15.0) -> None:
        if self.running:
            return
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self._name} did not start within {timeout} s")
        if self._error is not None:
            self._thread.join(timeout)
            raise self._error

    def stop(self, timeout: float = 15.0) -> None:
        if not self.running or self._loop is None or self._stop is None:
            return
        self._loop.call_soon_threadsafe(self._stop.set)
        assert self._thread is not None
        self._thread.join(timeout)

    def call(self, function: Callable[[], T], timeout: float = 15.0) -> T:
        """Run `function` on the loop thread and return its result (or raise its exception)."""

        async def run() -> T:
            return function()

        return self.run(run, timeout)

    def run(self, coroutine: Callable[[], Awaitable[T]], timeout: float = 15.0) -> T:
        """Await `coroutine()` on the loop thread and return its result."""
        if self._loop is None or not self.running:
            raise RuntimeError(f"{self._name} is not running")

        async def wrapped() -> T:
            return await coroutine()

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout)

    def _main(self) -> None:
        run_stand_in(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self._startup()
        except Exception as exc:  # surfaced to the thread that called start()
            self._error = exc
            self._ready.set()
            await self._shutdown()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._shutdown()


class InBackground:
    """Start/stop and `with` for a stand-in served by a LoopThread held in `_thread`."""

    _thread: LoopThread

    def start(self) -> Self:
        """Start listening; returns once the listeners accept connections."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and abandon planned work."""
        self._thread.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
