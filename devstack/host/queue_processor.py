"""What happens to one received queue message (the extension's `QueueProcessor`).

Why this is its own module: the message lifecycle is where fidelity matters most and is easiest to
get subtly wrong. In order (`functions-host.md` §1.3-1.5):
1. Body not valid base64 (with `messageEncoding: base64`) -> copy the raw text to `<queue>-poison`,
   delete the original, never invoke. A `-poison` trigger queue has no poison queue: leave the
   message under its 10-minute receive lock and log an error (so it is not retried hot).
2. `dequeueCount > maxDequeueCount` on receive -> poison without invoking.
3. Invoke, renewing the 10-minute lock every 5 minutes (keeping the newest pop receipt).
4. Success -> delete. Failure -> poison when `dequeueCount >= maxDequeueCount`, else make it visible
   after host.json `visibilityTimeout`. Timeout or shutdown -> touch nothing (the lock expires).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.functions import meta
from azure.storage.queue import QueueMessage
from azure.storage.queue.aio import QueueClient

from devstack.host.config import QueuesOptions
from devstack.host.invoker import Executor, InvocationResult, LoadedFunction, Outcome
from devstack.host.outputs import encode_message
from devstack.host.storage import QueueWatcher, send_creating_queue

log = logging.getLogger(__name__)

# Hard-coded to 10 minutes in the host's QueueListener. DEVSTACK_QUEUE_LOCK_SECONDS shortens it for
# crash and soak tests, so a message held by a killed runner comes back within the test (a documented
# deviation, off by default).
RECEIVE_LOCK = timedelta(seconds=int(os.environ.get("DEVSTACK_QUEUE_LOCK_SECONDS", "600")))
RENEWAL_FLOOR = timedelta(minutes=1)
_BASE64_WHITESPACE = str.maketrans("", "", " \t\r\n")


@dataclass(frozen=True)
class Received:
    """A received message with the fields the SDK types as optional made definite."""

    id: str
    pop_receipt: str
    dequeue_count: int
    content: str
    inserted_on: datetime | None
    expires_on: datetime | None
    next_visible_on: datetime | None

    @classmethod
    def from_sdk(cls, message: QueueMessage) -> Received:
        return cls(
            id=str(message.id),
            pop_receipt=str(message.pop_receipt),
            dequeue_count=int(message.dequeue_count or 0),
            content=message.content or "",
            inserted_on=message.inserted_on,
            expires_on=message.expires_on,
            next_visible_on=message.next_visible_on,
        )


@dataclass(frozen=True)
class QueueTrigger:
    """A queue-triggered function with its queue names and connection resolved."""

    function: LoadedFunction
    connection_string: str
    queue_name: str
    poison_name: str | None


class MessageProcessor:
    """Runs the lifecycle above for each message of one queue trigger."""

    def __init__(
        self,
        trigger: QueueTrigger,
        queue: QueueClient,
        poison: QueueClient | None,
        executor: Executor,
        options: QueuesOptions,
        watcher: QueueWatcher,
    ) -> None:
        self._trigger = trigger
        self._queue = queue
        self._poison = poison
        self._executor = executor
        self._options = options
        self._watcher = watcher
        self.completions: set[asyncio.Task[None]] = set()

    async def process(self, message: Received) -> None:
        body = decode_body(message.content, self._options.message_encoding)
        if body is None:
            await self._on_decode_failure(message)
            return
        if self._poison is not None and message.dequeue_count > self._options.max_dequeue_count:
            await self._poison_exhausted(message.id, message.pop_receipt, body)
            return
        renewal = VisibilityRenewal(self._queue, message.id, message.pop_receipt)
        try:
            datum, metadata = trigger_data(message, body)
            result = await self._executor.execute(self._trigger.function, datum, metadata)
        finally:
            pop_receipt = await renewal.stop()
        # A graceful stop must not cancel a completion that has begun (extension 5.3.4).
        completion = asyncio.create_task(self._complete(message, pop_receipt, body, result))
        self.completions.add(completion)
        completion.add_done_callback(self.completions.discard)
        await asyncio.shield(completion)

    async def _complete(self, message: Received, pop_receipt: str, body: bytes, result: InvocationResult) -> None:
        if result.succeeded:
            await self._delete(message.id, pop_receipt)
        elif result.outcome is Outcome.TIMED_OUT or self._poison is None:
            log.warning(
                "Message %s on '%s' stays locked until its visibility timeout expires.",
                message.id,
                self._trigger.queue_name,
            )
        elif message.dequeue_count >= self._options.max_dequeue_count:
            await self._poison_exhausted(message.id, pop_receipt, body)
        else:
            await self._release(message.id, pop_receipt)

    async def _on_decode_failure(self, message: Received) -> None:
        if self._poison is None:
            log.error(
                "Message %s on '%s' is not valid base64 and '%s' has no poison queue; leaving it locked for %s.",
                message.id, self._trigger.queue_name, self._trigger.queue_name, RECEIVE_LOCK,
            )  # fmt: skip
            return
        log.warning(
            "Message %s on '%s' is not valid base64; moving it to the poison queue.",
            message.id,
            self._trigger.queue_name,
        )
        # The host copies the undecodable text as is (a non-encoding client).
        await self._move_to_poison(message.id, message.pop_receipt, message.content)

    async def _poison_exhausted(self, message_id: str, pop_receipt: str, body: bytes) -> None:
        log.warning(
            "Message has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
            self._options.max_dequeue_count, self._trigger.poison_name,
        )  # fmt: skip
        # A new message with the original body, re-encoded with the configured encoding.
        await self._move_to_poison(message_id, pop_receipt, encode_message(body, self._options.message_encoding))

    async def _move_to_poison(self, message_id: str, pop_receipt: str, content: str) -> None:
        assert self._poison is not None
        await send_creating_queue(self._poison, content)
        self._watcher.notify(self._poison.url)
        await self._delete(message_id, pop_receipt)

    async def _delete(self, message_id: str, pop_receipt: str) -> None:
        try:
            await self._queue.delete_message(message_id, pop_receipt)
        except HttpResponseError as exc:
            _log_tolerated(exc, "delete", message_id)

    async def abandon(self, message: Received) -> None:
        """Make a message that will not be processed visible again at once."""
        await self._release(message.id, message.pop_receipt, timedelta(0))

    async def _release(self, message_id: str, pop_receipt: str, after: timedelta | None = None) -> None:
        delay = self._options.visibility_timeout if after is None else after
        seconds = round(delay.total_seconds())
        try:
            await self._queue.update_message(message_id, pop_receipt, visibility_timeout=seconds)
        except HttpResponseError as exc:
            _log_tolerated(exc, "release", message_id)


def _log_tolerated(exc: HttpResponseError, action: str, message_id: str) -> None:
    # Pop-receipt mismatch (someone else owns it), 404 (gone) and 409 (queue being deleted) are
    # expected races that the host ignores; anything else is worth an error line.
    if exc.status_code in (400, 404, 409):
        log.info(
            "Could not %s message %s (%s); ignoring.", action, message_id, getattr(exc, "error_code", exc.status_code)
        )
    else:
        log.error("Could not %s message %s: %s", action, message_id, exc)


def decode_body(content: str, encoding: str) -> bytes | None:
    """The message bytes, or None when base64 decoding fails (like `Convert.FromBase64String`)."""
    if encoding != "base64":
        return content.encode("utf-8")
    try:
        return base64.b64decode(content.translate(_BASE64_WHITESPACE), validate=True)
    except (binascii.Error, ValueError):
        return None


def trigger_data(message: Received, body: bytes) -> tuple[meta.Datum, dict[str, meta.Datum]]:
    """The trigger value and the host's binding data (`QueueTriggerBinding.CreateBindingData`)."""
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    datum = meta.Datum(text, "string") if text is not None else meta.Datum(body, "bytes")
    metadata = {
        "Id": meta.Datum(message.id, "string"),
        "DequeueCount": meta.Datum(message.dequeue_count, "int"),
        "InsertionTime": meta.Datum(_iso(message.inserted_on), "string"),
        "ExpirationTime": meta.Datum(_iso(message.expires_on), "string"),
        "NextVisibleTime": meta.Datum(_iso(message.next_visible_on), "string"),
        "PopReceipt": meta.Datum(message.pop_receipt, "string"),
    }
    if text is not None:
        metadata["QueueTrigger"] = meta.Datum(text, "string")
    return datum, metadata


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


class VisibilityRenewal:
    """Keeps the receive lock: `UpdateMessage(visibility=10 min)` every 5 min while invoking."""

    def __init__(self, queue: QueueClient, message_id: str, pop_receipt: str) -> None:
        self._queue = queue
        self._message_id = message_id
        self.pop_receipt = pop_receipt
        self._stopping = False
        self._updating = False
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        interval = RECEIVE_LOCK / 2
        while not self._stopping:
            await asyncio.sleep(interval.total_seconds())
            self._updating = True
            try:
                receipt = await self._queue.update_message(
                    self._message_id, self.pop_receipt, visibility_timeout=int(RECEIVE_LOCK.total_seconds())
                )
                self.pop_receipt, interval = str(receipt.pop_receipt), RECEIVE_LOCK / 2
            except ResourceNotFoundError:
                return  # message or queue gone: ownership lost
            except HttpResponseError as exc:
                if exc.status_code is None or exc.status_code < 500:
                    return  # pop receipt mismatch: someone else owns it now
                interval = max(interval / 2, RENEWAL_FLOOR)  # LinearSpeedupStrategy on 5xx
            finally:
                self._updating = False

    async def stop(self) -> str:
        """Stop renewing; an update in flight is awaited so its new pop receipt is not lost."""
        self._stopping = True
        if not self._updating:
            self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return self.pop_receipt
