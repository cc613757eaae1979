"""Requests larger than a queue message travel by claim-check: the request in blob storage, a reference
on the queue and in the ledger."""

from __future__ import annotations

import base64
import json
import uuid

from devstack.acs import AcsEmulator
from shared.client import ContactMessagesClient
from shared.models import Status
from shared.runtime import Services
from shared.services.decoding import QueueDelivery
from shared.services.outcomes import Outcome
from tests.integration.conftest import Clock

ATTACHMENT = base64.b64encode(b"%PDF-1.7 " + b"x" * 150_000).decode()


def _big_email(message_id: str) -> dict[str, object]:
    return {
        "id": message_id,
        "channel": "email",
        "to": "ann@example.com",
        "content": {
            "subject": "Invoice",
            "text": "attached",
            "attachments": [{"name": "invoice.pdf", "contentType": "application/pdf", "contentInBase64": ATTACHMENT}],
        },
    }


async def _next_queue_body(svc: Services) -> bytes:
    [message] = await svc.outbound.receive(1)
    await svc.outbound.delete(message)
    return base64.b64decode(message.text)


async def test_http_intake_of_a_200_kb_email_sends_it_whole(svc: Services, acs: AcsEmulator) -> None:
    """The intake stores the request as a blob, queues a reference, and the sender sends the attachment."""
    result = await svc.intake.submit(json.dumps(_big_email("big-1")).encode())
    assert result.accepted
    body = await _next_queue_body(svc)
    ref = json.loads(body)["payloadRef"]
    assert len(body) < 1000 and ref.startswith("big-1/") and ref.endswith(".json")
    row = await svc.ledger.get("big-1")
    assert row is not None and row.payload_ref == ref and row.payload is None
    assert await svc.sending.handle(QueueDelivery(body, uuid.uuid4().hex, 1)) == Outcome.SENT
    [sent] = acs.sends("email")
    assert sent.operation_id and len(sent.content) > 150_000


async def test_the_client_claim_checks_large_requests(svc: Services, acs: AcsEmulator) -> None:
    """The producer client does the same for requests it enqueues itself, with the SDK client options
    it is given reaching both its queue and its blob client."""
    conn = svc.settings.storage_connection_string or ""
    client = ContactMessagesClient.from_connection_string(
        conn, svc.settings.send_queue, svc.settings.table_prefix, use_env_settings=False
    )
    try:
        await client.enqueue(_big_email("big-2"))
    finally:
        await client.close()
    body = await _next_queue_body(svc)
    assert json.loads(body)["payloadRef"].startswith("big-2/")
    assert await svc.sending.handle(QueueDelivery(body, uuid.uuid4().hex, 1)) == Outcome.SENT


async def test_retention_deletes_the_stored_request(svc: Services, clock: Clock) -> None:
    """When content is purged, the blob goes too; a later replay has nothing to send."""
    await svc.intake.submit(json.dumps(_big_email("big-3")).encode())
    body = await _next_queue_body(svc)
    await svc.sending.handle(QueueDelivery(body, uuid.uuid4().hex, 1))
    clock.advance(minutes=61)
    await svc.reconcile.run()
    clock.advance(days=8)
    assert (await svc.retention.run())["purge-content"] == 1
    row = await svc.ledger.get("big-3")
    assert row is not None and row.payload_ref is None and row.status in (Status.SENT, Status.EXPIRED)
    outcome = await svc.sending.handle(QueueDelivery(body, uuid.uuid4().hex, 1))
    assert outcome in (Outcome.REJECTED, Outcome.DUPLICATE)
