"""The running host: wires listeners, the HTTP front and the worker, and shuts down gracefully.

Why the shutdown is spelled out: on SIGTERM/SIGINT the host stops polling first, lets invocations in
flight finish within a grace period, and never deletes a message whose invocation did not finish
successfully. Anything still running at the deadline is cancelled without completing its message
(the 10-minute receive lock brings it back later), completions already begun are allowed to end,
and timer leases are released so another instance can take over at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any

from devstack.host.catalog import Catalog
from devstack.host.config import HostConfig
from devstack.host.eventgrid import EventGridWebhook
from devstack.host.http_server import HttpFront, process_uptime_ms
from devstack.host.invoker import Executor, WorkerChannel
from devstack.host.keys import HostKeys
from devstack.host.outputs import OutputWriter
from devstack.host.queue_listener import QueueListener
from devstack.host.queue_processor import MessageProcessor, QueueTrigger
from devstack.host.schedule_monitor import ScheduleMonitor
from devstack.host.settings import Settings
from devstack.host.singleton import HOSTS_CONTAINER, ListenerLock, lock_blob_name
from devstack.host.storage import QueueWatcher, StorageClients
from devstack.host.timers import LeasedTimer, TimerTrigger
from devstack.host.worker_pool import ProcessWorkers, WorkerPlan

log = logging.getLogger(__name__)

COMPLETION_WAIT_SECONDS = 5.0
VERSION = "4.x-compatible (devstack local runner)"


@dataclass(frozen=True)
class HostContext:
    """Everything startup resolved before the event loop runs."""

    catalog: Catalog
    settings: Settings
    config: HostConfig
    host_id: str
    zone: tzinfo
    sock: socket.socket
    grace_period: float
    ready_file: Path | None
    workers: WorkerPlan


class Host:
    def __init__(self, context: HostContext) -> None:
        self._ctx = context
        self._state = "Default"
        self._started = time.monotonic()
        self._stop_requested = asyncio.Event()
        self._clients = StorageClients()
        self._worker: WorkerChannel = ProcessWorkers(context.workers)
        self._watcher = QueueWatcher()
        writer = OutputWriter(self._clients, self._watcher, context.config.queues.message_encoding)
        self._executor = Executor(self._worker, writer, context.config.function_timeout)
        self._queues: list[QueueListener] = []
        self._timers: list[LeasedTimer] = []
        self._front: HttpFront | None = None

    @property
    def url(self) -> str:
        host, port = self._ctx.sock.getsockname()[:2]
        return f"http://{host}:{port}"

    async def run(self) -> int:
        self._install_signal_handlers()
        await self._start()
        await self._stop_requested.wait()
        await self._shutdown()
        return 0

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)

    def _on_signal(self, signum: int) -> None:
        if self._stop_requested.is_set():
            log.warning("Second %s: exiting without waiting", signal.Signals(signum).name)
            os._exit(1)
        log.info(
            "Received %s: stopping listeners, grace period %.1fs", signal.Signals(signum).name, self._ctx.grace_period
        )
        self._stop_requested.set()

    async def _start(self) -> None:
        await self._worker.start()
        self._queues = [self._queue_listener(trigger) for trigger in self._ctx.catalog.queues]
        self._timers = [self._leased_timer(trigger) for trigger in self._ctx.catalog.timers]
        for listener in self._queues:
            listener.start()
        for timer in self._timers:
            timer.start()
        webhook = EventGridWebhook(self._ctx.catalog.eventgrid, self._executor)
        keys = HostKeys.from_settings(self._ctx.settings)
        self._front = HttpFront(
            self._ctx.catalog.http, webhook, self._executor, keys, self._ctx.config.route_prefix, self.status
        )
        await self._front.start(self._ctx.sock, self._ctx.grace_period)
        self._state = "Running"
        log.info(
            "Host started (id=%s) on %s with functions: %s",
            self._ctx.host_id,
            self.url,
            ", ".join(self._ctx.catalog.names),
        )
        self._write_ready_file()

    def _queue_listener(self, trigger: QueueTrigger) -> QueueListener:
        queue = self._clients.queue(trigger.connection_string, trigger.queue_name)
        poison = self._clients.queue(trigger.connection_string, trigger.poison_name) if trigger.poison_name else None
        options = self._ctx.config.queues
        processor = MessageProcessor(trigger, queue, poison, self._executor, options, self._watcher)
        return QueueListener(trigger, queue, processor, options, self._watcher)

    def _leased_timer(self, trigger: TimerTrigger) -> LeasedTimer:
        blobs = self._clients.blobs(self._ctx.settings.connection_string(None))
        monitor = ScheduleMonitor(blobs.get_container_client(HOSTS_CONTAINER), self._ctx.host_id, self._ctx.zone)
        timer = LeasedTimer(trigger, self._executor, monitor, self._ctx.zone)
        blob_name = lock_blob_name(self._ctx.host_id, trigger.function.name)
        timer.lock = ListenerLock(blobs, blob_name, self._ctx.config.singleton, timer.on_acquired, timer.on_lost)
        return timer

    def status(self) -> dict[str, Any]:
        """`GET /admin/host/status`: the host's shape, plus the function list and load errors."""
        return {
            "id": self._ctx.host_id,
            "state": self._state,
            "version": VERSION,
            "processUptime": process_uptime_ms(self._started),
            "functions": self._ctx.catalog.names,
            "errors": [f"{name}: {error}" for name, error in self._ctx.catalog.errors.items()],
        }

    def _write_ready_file(self) -> None:
        if self._ctx.ready_file is None:
            return
        temporary = self._ctx.ready_file.with_suffix(".tmp")
        temporary.write_text(json.dumps({"url": self.url, "pid": os.getpid()}), encoding="utf-8")
        temporary.replace(self._ctx.ready_file)

    async def _shutdown(self) -> None:
        self._state = "Stopping"
        for listener in self._queues:
            listener.stop()
        for timer in self._timers:
            timer.stop()
        http_stopped = asyncio.create_task(self._front.stop()) if self._front else None
        await asyncio.gather(*(listener.stopped() for listener in self._queues))
        await self._drain()
        if http_stopped is not None:
            await http_stopped
        await asyncio.gather(*(timer.close() for timer in self._timers), return_exceptions=True)
        await self._clients.close()
        self._worker.stop()
        self._state = "Stopped"
        log.info("Host stopped")

    async def _drain(self) -> None:
        """Wait up to the grace period for in-flight work, then cancel it without completing it."""
        in_flight: set[asyncio.Task[None]] = set()
        for listener in self._queues:
            in_flight |= listener.in_flight
        for timer in self._timers:
            in_flight |= timer.in_flight
        if in_flight:
            log.info("Waiting up to %.1fs for %d invocation(s) in flight", self._ctx.grace_period, len(in_flight))
            _, pending = await asyncio.wait(in_flight, timeout=self._ctx.grace_period)
            for task in pending:
                task.cancel()
            if pending:
                log.warning(
                    "%d invocation(s) did not finish within the grace period; their messages are left locked",
                    len(pending),
                )
                await asyncio.gather(*pending, return_exceptions=True)
        completions = set().union(*(listener.completions for listener in self._queues))
        if completions:
            await asyncio.wait(completions, timeout=COMPLETION_WAIT_SECONDS)
