"""The send queue as producers and the pipeline use it: base64 text, as host.json expects.

Why: the Functions host decodes queue messages as base64 by default and poisons plain text at
once, so every writer goes through `QueueWriter`, which encodes the same way the host does.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ServiceRequestError
from azure.storage.queue.aio import QueueClient

from shared.errors import PermanentError, StorageUnreachable, TransientError

MAX_VISIBILITY_SECONDS = 7 * 24 * 3600
# Storage queue messages are at most 64 KiB; base64 costs a third, so the payload limit is 48 KiB.
MAX_PAYLOAD_BYTES = 48 * 1024


@dataclass(frozen=True)
class RawMessage:
    """A queue message as stored: its id, pop receipt, dequeue count and undecoded text."""

    id: str
    pop_receipt: str
    dequeue_count: int
    text: str


def encode(body: str) -> str:
    return base64.b64encode(body.encode()).decode()


def _storage_error(exc: Exception) -> Exception:
    if isinstance(exc, HttpResponseError) and exc.status_code is not None and exc.status_code < 500:
        return PermanentError(f"queue refused the operation: {exc.status_code}")
    if isinstance(exc, ServiceRequestError):
        return StorageUnreachable(f"queue unreachable: {type(exc).__name__}")
    return TransientError(f"queue unavailable: {type(exc).__name__}")


class QueueWriter:
    """Writes and reads one queue. Messages are base64-encoded here, not by an SDK policy, so
    `RawMessage.text` is exactly what is stored (needed to record undecodable poison messages)."""

    def __init__(self, client: QueueClient) -> None:
        self._client = client
        self.name = client.queue_name

    async def create_if_missing(self) -> None:
        try:
            await self._client.create_queue()
        except ResourceExistsError:
            return
        except (HttpResponseError, ServiceRequestError) as exc:
            raise _storage_error(exc) from exc

    async def send(self, body: str, delay_seconds: float = 0) -> str:
        """Enqueue `body` (JSON text), visible after `delay_seconds`; returns the queue message id."""
        if len(body.encode()) > MAX_PAYLOAD_BYTES:
            raise PermanentError(f"message is larger than the queue limit of {MAX_PAYLOAD_BYTES} bytes")
        delay = max(0, min(math.ceil(delay_seconds), MAX_VISIBILITY_SECONDS))
        try:
            result = await self._client.send_message(encode(body), visibility_timeout=delay or None)
        except (HttpResponseError, ServiceRequestError) as exc:
            raise _storage_error(exc) from exc
        return str(result.id)

    async def receive(self, count: int, visibility_seconds: int = 30) -> list[RawMessage]:
        try:
            pages = self._client.receive_messages(messages_per_page=count, visibility_timeout=visibility_seconds)
            messages = []
            async for msg in pages:
                messages.append(RawMessage(msg.id, str(msg.pop_receipt), int(msg.dequeue_count or 0), str(msg.content)))
                if len(messages) >= count:
                    break
            return messages
        except (HttpResponseError, ServiceRequestError) as exc:
            raise _storage_error(exc) from exc

    async def delete(self, message: RawMessage) -> None:
        try:
            await self._client.delete_message(message.id, message.pop_receipt)
        except (HttpResponseError, ServiceRequestError) as exc:
            raise _storage_error(exc) from exc

    async def close(self) -> None:
        await self._client.close()

    async def depth(self) -> int:
        try:
            props = await self._client.get_queue_properties()
        except (HttpResponseError, ServiceRequestError) as exc:
            raise _storage_error(exc) from exc
        return int(props.approximate_message_count or 0)
