"""Where user code runs: one long-lived event loop for `async def`, a thread pool for `def`.

Why a separate thread for the user loop: in Azure the host and the Python worker are different
processes, so a function that blocks its event loop stalls other async invocations but never the
host's polling, lock renewal or HTTP server. Keeping the host's own loop apart gives the same
isolation, and the user loop lives for the whole run so module-level async SDK clients can be
reused across invocations (as the worker allows; never `asyncio.run()` per invocation).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from devstack.host.bindings import INVOCATION_LOCAL


class FunctionTimeoutError(TimeoutError):
    """The invocation ran past host.json `functionTimeout`."""


class Worker:
    """Runs user functions: async ones on the worker loop, sync ones in the thread pool."""

    def __init__(self, thread_count: int | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="python-worker-loop", daemon=True)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=thread_count, thread_name_prefix="python-worker")
        self._busy = 0
        self._lock = threading.Lock()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Worker:
        """PYTHON_THREADPOOL_THREAD_COUNT, unset = Python's default (min(32, cpu + 4))."""
        value = environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "").strip()
        return cls(int(value) if value else None)

    def start(self) -> None:
        self._thread.start()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    @property
    def busy(self) -> bool:
        """True while any sync function is still running on a pool thread."""
        with self._lock:
            return self._busy > 0

    async def call(
        self,
        function: Callable[..., Any],
        is_async: bool,
        kwargs: dict[str, Any],
        invocation_id: str,
        timeout: float | None,
    ) -> Any:
        """Run one invocation; on timeout the async task is cancelled (a sync thread cannot be)."""
        if is_async:
            future = asyncio.run_coroutine_threadsafe(function(**kwargs), self._loop)
        else:
            future = self._pool.submit(self._run_sync, function, kwargs, invocation_id)
        wrapped = asyncio.wrap_future(future)
        if timeout is None:
            return await wrapped
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                return await wrapped
        except TimeoutError as exc:
            if scope.expired():  # not a TimeoutError raised by the function itself
                raise FunctionTimeoutError(f"Timeout value of {timeout:g}s was exceeded by function.") from exc
            raise

    def _run_sync(self, function: Callable[..., Any], kwargs: dict[str, Any], invocation_id: str) -> Any:
        with self._lock:
            self._busy += 1
        INVOCATION_LOCAL.invocation_id = invocation_id
        try:
            return function(**kwargs)
        finally:
            INVOCATION_LOCAL.invocation_id = None
            with self._lock:
                self._busy -= 1

    def stop(self) -> None:
        """Stop accepting work; running threads are abandoned (the process is about to exit)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
