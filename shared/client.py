"""The producer client: enqueue send requests the way the function app expects them.

Why a client: the host decodes queue messages as base64 and poisons plain text at once, ids must be
chosen by the producer for idempotency, and requests should be validated before they are queued.

    client = ContactMessagesClient.from_connection_string(conn)
    message_id = await client.enqueue({"channel": "sms", "to": "+14255550123", "content": {"text": "Hi"}})

A request with `"priority": "high"` (one-time codes, alerts) goes to the priority lane, `<queue>-priority`,
which a trigger of its own drains: it never waits behind the normal backlog.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from azure.storage.blob.aio import ContainerClient
from azure.storage.queue.aio import QueueClient

from shared.adapters.blobs import PayloadStore
from shared.adapters.queues import MAX_PAYLOAD_BYTES, QueueWriter
from shared.claimcheck import payload_blob_name, reference_body
from shared.errors import FieldError, ValidationFailed
from shared.models import AnyRequest, Priority
from shared.schema import TableNames
from shared.validation import parse_request


class ContactMessagesClient:
    """Validates requests structurally, gives each an id, and enqueues it base64-encoded."""

    def __init__(
        self, queue: QueueWriter, payloads: PayloadStore | None = None, priority_queue: QueueWriter | None = None
    ) -> None:
        self._queue = queue
        self._payloads = payloads
        self._priority_queue = priority_queue

    @classmethod
    def from_connection_string(
        cls, connection_string: str, queue_name: str = "outbound", table_prefix: str = "cm", **client_options: Any
    ) -> ContactMessagesClient:
        """A client for the app's storage; large requests go to the app's payload container.

        `client_options` go to the storage SDK clients as they are, for example `use_env_settings=False`
        for a producer that needs no proxy settings: the SDK then skips looking them up on every request."""
        container = ContainerClient.from_connection_string(
            connection_string, TableNames(table_prefix).payload_container, **client_options
        )
        queue = QueueClient.from_connection_string(connection_string, queue_name, **client_options)
        lane = QueueClient.from_connection_string(connection_string, f"{queue_name}-priority", **client_options)
        return cls(QueueWriter(queue), PayloadStore(container), QueueWriter(lane))

    @staticmethod
    def prepare(request: Mapping[str, Any] | AnyRequest) -> tuple[str, str]:
        """The (message id, JSON body) to enqueue; raises ValidationFailed for a broken request."""
        parsed = _parsed(request)
        return str(parsed.id), parsed.model_dump_json(by_alias=True, exclude_none=True)

    async def enqueue(self, request: Mapping[str, Any] | AnyRequest) -> str:
        """Enqueue one request; returns its message id (the producer's, or a new uuid).

        The id is the idempotency key. A request without one gets a random UUID here, not one derived
        from its content: the client holds no secret, and a plain digest of a templated one-time code
        could be reversed to the phone number. So a retry of `enqueue` is the same message only if it
        carries the id the first call returned (or the producer's own id)."""
        parsed = _parsed(request)
        message_id = str(parsed.id)
        await self._send(message_id, parsed.model_dump_json(by_alias=True, exclude_none=True), self._lane(parsed))
        return message_id

    def _lane(self, request: AnyRequest) -> QueueWriter:
        """The priority lane for a high-priority request (the send queue when the client has none)."""
        if self._priority_queue is not None and request.priority == Priority.HIGH:
            return self._priority_queue
        return self._queue

    async def _send(self, message_id: str, body: str, queue: QueueWriter) -> None:
        if len(body.encode()) > MAX_PAYLOAD_BYTES:  # too big for a queue message: claim-check
            if self._payloads is None:
                raise ValidationFailed(
                    [
                        FieldError(
                            "$",
                            "request is larger than a queue message; give the client a "
                            "payload store (from_connection_string does)",
                        )
                    ]
                )
            name = payload_blob_name(message_id, body)
            await self._payloads.put(name, body)
            body = reference_body(message_id, name)
        await queue.send(body)

    async def ensure_queue(self) -> None:
        """Create the send queue and the priority lane if missing (the app creates them on first start too)."""
        await self._queue.create_if_missing()
        if self._priority_queue is not None:
            await self._priority_queue.create_if_missing()

    async def close(self) -> None:
        await self._queue.close()
        if self._priority_queue is not None:
            await self._priority_queue.close()
        if self._payloads is not None:
            await self._payloads.close()


def _json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, default=str)


def _parsed(request: Mapping[str, Any] | AnyRequest) -> AnyRequest:
    """The request as the contract reads it, under the producer's id or a new uuid."""
    data = dict(request) if isinstance(request, Mapping) else request.model_dump(by_alias=True, mode="json")
    if data.get("id") is None:
        data["id"] = str(uuid.uuid4())
    return parse_request(_json(data))
