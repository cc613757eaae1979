"""A request's id is its idempotency key: a different request under a taken id is refused, not sent,
and leaves a trace in the message's history; the first request's content stays what it was.

Before, the second request was skipped silently when the first had been sent, was sent with the
first one's ledger record when it won the claim, and overwrote the first one's stored text when both
were too large for a queue message.
"""

from __future__ import annotations

import base64
import json
import uuid

from devstack.acs import AcsEmulator
from shared.models import Status
from shared.runtime import Services
from shared.schema import is_ledger_row
from shared.services.decoding import QueueDelivery
from shared.services.outcomes import Outcome
from tests.bodies import sms
from tests.integration.test_large_payloads import _big_email


def _delivery(body: bytes) -> QueueDelivery:
    return QueueDelivery(body, uuid.uuid4().hex, 1)


async def _history(svc: Services, message_id: str) -> list[dict[str, object]]:
    table = svc.storage.table(svc.names.messages)
    rows = [r async for r in table.query("PartitionKey eq @pk", {"pk": message_id})]
    return [r for r in rows if not is_ledger_row(str(r["RowKey"]))]


async def test_a_different_request_under_a_sent_id_is_refused_and_recorded(svc: Services, acs: AcsEmulator) -> None:
    assert await svc.sending.handle(_delivery(sms("reuse-1", text="Your code is 1234"))) == Outcome.SENT
    # The second request's code has letters no timestamp or hex digest holds: "9876" once matched a time.
    assert await svc.sending.handle(_delivery(sms("reuse-1", text="Your code is QRXZ-KWYV"))) == Outcome.ID_REUSED
    assert await svc.sending.handle(_delivery(sms("reuse-1", text="Your code is QRXZ-KWYV"))) == Outcome.ID_REUSED
    assert [s.content for s in acs.sends()] == ["Your code is 1234"]
    [trace] = [r for r in await _history(svc, "reuse-1") if r.get("Kind") == "conflict"]  # once, however often
    assert trace["EventType"] == "IdReused" and trace["Source"] == "queue"
    assert "QRXZ-KWYV" not in json.dumps(trace, default=str)  # a digest, not the content


async def test_a_repeat_of_the_same_request_is_still_a_plain_duplicate(svc: Services, acs: AcsEmulator) -> None:
    body = sms("repeat-1")
    assert await svc.sending.handle(_delivery(body)) == Outcome.SENT
    assert await svc.sending.handle(_delivery(body)) == Outcome.DUPLICATE
    assert [r for r in await _history(svc, "repeat-1") if r.get("Kind") == "conflict"] == []


async def test_a_different_request_cannot_take_over_an_unsent_id(svc: Services, acs: AcsEmulator) -> None:
    """The first request waits (its channel is paused); a second one under its id must not be the one
    that goes out once the channel resumes."""
    await svc.control.pause("sms", actor="test", reason="test", now=svc.clock())
    assert await svc.sending.handle(_delivery(sms("held-1", text="first"))) == Outcome.RESCHEDULED
    assert await svc.sending.handle(_delivery(sms("held-1", text="second"))) == Outcome.ID_REUSED
    await svc.control.resume("sms", actor="test", reason="test", now=svc.clock())
    svc.control._forget()  # this instance's own resume is visible at once
    assert await svc.sending.handle(_delivery(sms("held-1", text="first"))) == Outcome.SENT
    assert [s.content for s in acs.sends()] == ["first"]


async def test_the_http_intake_answers_a_taken_id_with_a_conflict(svc: Services) -> None:
    assert (await svc.intake.submit(sms("http-1", text="first"))).accepted
    result = await svc.intake.submit(sms("http-1", text="second"))
    assert not result.accepted and result.conflict and [e.field for e in result.errors] == ["id"]
    assert (await svc.intake.submit(sms("http-1", text="first"))).accepted  # a retry of the original is fine
    [trace] = [r for r in await _history(svc, "http-1") if r.get("Kind") == "conflict"]
    assert trace["Source"] == "http"


async def test_a_large_request_under_a_taken_id_leaves_the_first_ones_text_alone(
    svc: Services, acs: AcsEmulator
) -> None:
    first = _big_email("big-reuse")
    second = {**first, "content": {**first["content"], "subject": "Another invoice"}}  # type: ignore[dict-item]
    assert (await svc.intake.submit(json.dumps(first).encode())).accepted
    [queued] = await svc.outbound.receive(1)
    await svc.outbound.delete(queued)
    assert (await svc.intake.submit(json.dumps(second).encode())).conflict
    assert await svc.sending.handle(_delivery(base64.b64decode(queued.text))) == Outcome.SENT
    [sent] = acs.sends("email")
    assert '"Invoice"' in sent.content and "Another invoice" not in sent.content
    row = await svc.ledger.get("big-reuse")
    assert row is not None and row.status == Status.SENT and row.payload_ref
    container = svc.storage.blobs.get_container_client(svc.names.payload_container)
    names = [blob.name async for blob in container.list_blobs(name_starts_with="big-reuse/")]
    assert names == [row.payload_ref]  # the refused request's text is not kept
