"""The polling loop of one queue-triggered function (the extension's `QueueListener.ExecuteAsync`).

Why a faithful loop: throughput, latency and how often an idle app polls all follow from it.
Per iteration: receive `batchSize` messages under a 10-minute lock and start each concurrently;
if any came back, poll again as soon as in-flight work drops to `newBatchThreshold` (so at most
batchSize + newBatchThreshold run at once); if none, back off 100 ms growing randomly to
`maxPollingInterval`, cut short when the same host writes to the queue. The trigger queue is never
created: a missing queue is just polled with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.queue.aio import QueueClient

from devstack.host.backoff import RandomizedExponentialBackoff
from devstack.host.config import QueuesOptions
from devstack.host.queue_processor import RECEIVE_LOCK, MessageProcessor, QueueTrigger, Received
from devstack.host.storage import QueueWatcher

log = logging.getLogger(__name__)

MIN_POLLING_INTERVAL = timedelta(milliseconds=100)


class QueueListener:
    def __init__(
        self,
        trigger: QueueTrigger,
        queue: QueueClient,
        processor: MessageProcessor,
        options: QueuesOptions,
        watcher: QueueWatcher,
    ) -> None:
        self.trigger = trigger
        self._queue = queue
        self._processor = processor
        self._options = options
        self._wake = watcher.watch(queue.url)
        self._slot_freed = asyncio.Event()
        self._stopping = False
        self._missing_logged = False
        self.in_flight: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name=f"queue-listener:{self.trigger.function.name}")

    def stop(self) -> None:
        """Stop polling; in-flight messages keep running (the runner decides how long to wait)."""
        self._stopping = True
        self._wake.set()
        self._slot_freed.set()

    async def stopped(self) -> None:
        if self._loop_task is not None:
            await asyncio.gather(self._loop_task, return_exceptions=True)

    @property
    def completions(self) -> set[asyncio.Task[None]]:
        return self._processor.completions

    async def _run(self) -> None:
        backoff = RandomizedExponentialBackoff(
            MIN_POLLING_INTERVAL, self._options.max_polling_interval, MIN_POLLING_INTERVAL
        )
        while not self._stopping:
            messages = await self._receive()
            if self._stopping:
                # Received while stopping: hand them back now rather than hold them for 10 minutes.
                await asyncio.gather(*(self._processor.abandon(message) for message in messages))
                return
            for message in messages:
                self._spawn(message)
            if messages:
                backoff.next_delay(succeeded=True)
                await self._wait_for_threshold()
            else:
                await self._sleep(backoff.next_delay(succeeded=False))

    async def _receive(self) -> list[Received]:
        pager = self._queue.receive_messages(
            messages_per_page=self._options.batch_size,
            max_messages=self._options.batch_size,
            visibility_timeout=int(RECEIVE_LOCK.total_seconds()),
        )
        try:
            async for page in pager.by_page():
                return [Received.from_sdk(message) async for message in page]
        except ResourceNotFoundError:
            if not self._missing_logged:
                log.warning("Queue '%s' does not exist yet; polling with backoff.", self.trigger.queue_name)
                self._missing_logged = True
        except AzureError as exc:
            log.error("Receiving from '%s' failed: %s", self.trigger.queue_name, exc)
        return []

    def _spawn(self, message: Received) -> None:
        task = asyncio.create_task(self._processor.process(message))
        self.in_flight.add(task)
        task.add_done_callback(self._on_done)

    def _on_done(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("Processing a message from '%s' failed", self.trigger.queue_name, exc_info=task.exception())

    async def _wait_for_threshold(self) -> None:
        while len(self.in_flight) > self._options.new_batch_threshold and not self._stopping:
            self._slot_freed.clear()
            await self._slot_freed.wait()

    async def _sleep(self, delay: timedelta) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay.total_seconds())
        self._wake.clear()
