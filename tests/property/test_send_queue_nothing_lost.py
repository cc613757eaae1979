"""Property (c) of issue 14: any bytes on the send queue end as a message, a rejection or a dead
letter, never nowhere.

The host's part is played with its own rules (`devstack.host.queue_processor.decode_body`, the runner's
copy of the extension's base64 decode): decodable text goes to `send_message`'s service, undecodable
text is moved to `<queue>-poison` as it is, and a message the host gave up on is re-encoded there. The
app's part is the real one: SendService, then the reconcile run that drains the poison queue. Every
input must then be found: a ledger row (sent, rejected with its body verbatim, dead-lettered) or a
dead-letter row holding it verbatim."""

from __future__ import annotations

import base64
import json
import re

from azure.storage.queue import QueueMessage
from azure.storage.queue.aio import QueueClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.host.queue_processor import decode_body
from shared.adapters.queues import MAX_PAYLOAD_BYTES
from shared.ids import content_id
from shared.models import MESSAGE_ID_PATTERN, Status
from shared.runtime import Services
from shared.schema import RAW_PARTITION, join_payload
from shared.services.decoding import QueueDelivery
from shared.services.outcomes import Outcome
from tests.property.strategies import BODIES, QUEUE_TEXT

SETTINGS = settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _queue(svc: Services, name: str) -> QueueClient:
    """A client that writes text as it is, as a producer without the base64 policy (or the host) does."""
    return svc.storage.queues.get_queue_client(name)


async def send_raw(queue: QueueClient, text: str) -> QueueMessage:
    """Puts `text` on the queue as it is, and makes sure the queue holds exactly that.

    Azurite (3.37) reads a request body chunk by chunk and joins the chunks as strings
    (`readRequestIntoText` in its queue serializer), so a character whose UTF-8 bytes straddle two socket
    reads (64 KiB, headers included) is stored as U+FFFD. Azure Storage decodes the whole body. A copy
    Azurite mangled is removed and the text sent again behind a header one byte longer, which moves the
    read boundary, so that the tests judge the app and not the emulator's reader."""
    for pad in range(8):
        sent = await queue.send_message(text, headers={"x-test-pad": "p" * pad})
        stored = [m.content for m in await queue.peek_messages(max_messages=32) if m.id == sent.id]
        if stored == [text]:
            return sent
        await queue.delete_message(sent)
    raise AssertionError("Azurite did not store the text as sent in eight attempts")


def verbatim(entity: dict[str, object]) -> bytes:
    """The bytes a row keeps: its payload text, or the base64 it holds for bytes that are not UTF-8."""
    text = join_payload(entity) or ""
    return base64.b64decode(text) if entity.get("PayloadEncoding") == "base64" else text.encode()


def _candidate_ids(svc: Services, body: bytes) -> list[str]:
    ids = [content_id(svc.settings.consent_hash_key, body)]
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # the ids are recomputed here, independently of the app's parser
        return ids
    candidate = data.get("id") if isinstance(data, dict) else None
    if isinstance(candidate, str) and re.fullmatch(MESSAGE_ID_PATTERN, candidate):
        ids.insert(0, candidate)
    return ids


async def _host_delivers(svc: Services, text: str) -> tuple[bytes | None, Outcome | None]:
    """One message through the host's rules: the body it decoded (None: it moved the text to poison)
    and the outcome of the app's queue trigger."""
    [message] = await svc.outbound.receive(1)
    assert message.text == text
    body = decode_body(message.text, "base64")
    if body is None:
        await send_raw(_queue(svc, svc.settings.poison_queue), message.text)  # raw, at once
        await svc.outbound.delete(message)
        return None, None
    outcome = await svc.sending.handle(QueueDelivery(body, message.id, message.dequeue_count))
    await svc.outbound.delete(message)
    return body, outcome


async def _assert_recorded(svc: Services, body: bytes, outcome: Outcome) -> None:
    rows = [await svc.ledger.get(i) for i in _candidate_ids(svc, body)]
    assert any(rows), f"no ledger row for an input that ended {outcome}"
    if outcome == Outcome.REJECTED:
        row = next(r for r in rows if r is not None and r.status == Status.REJECTED)
        assert verbatim(dict(row.entity)) == body[:MAX_PAYLOAD_BYTES]
        assert json.loads(row.get("Errors"))


@SETTINGS
@given(BODIES)
async def test_any_encoded_bytes_end_as_a_message_or_a_rejection(svc: Services, body: bytes) -> None:
    """Any bytes, base64-encoded as the host expects, are sent or Rejected (with the body kept
    verbatim), and the queue trigger never raises for them (which would mean five retries for nothing)."""
    if len(body) > MAX_PAYLOAD_BYTES:
        body = body[:MAX_PAYLOAD_BYTES]
    text = base64.b64encode(body).decode()
    await send_raw(_queue(svc, svc.settings.send_queue), text)
    decoded, outcome = await _host_delivers(svc, text)
    assert decoded == body and outcome is not None
    await _assert_recorded(svc, body, outcome)


async def _dead_letter_of(svc: Services, poison_id: str) -> bytes | None:
    stored = await svc.storage.table(svc.names.dead_letters).get(RAW_PARTITION, poison_id)
    return None if stored is None else verbatim(dict(stored.entity))


@SETTINGS
@given(QUEUE_TEXT)
async def test_any_text_on_the_send_queue_ends_recorded(svc: Services, text: str) -> None:
    """Text written without base64 (any characters a queue holds) ends as a message or a rejection when
    it happens to decode, else in the poison queue, from which the next reconcile run records it
    verbatim with its reason and removes it."""
    await send_raw(_queue(svc, svc.settings.send_queue), text)
    body, outcome = await _host_delivers(svc, text)
    if body is not None:
        assert outcome is not None
        await _assert_recorded(svc, body, outcome)
        return
    [poisoned] = await _queue(svc, svc.settings.poison_queue).peek_messages(max_messages=32)
    await svc.reconcile.run()
    assert await svc.poison.depth() == 0
    kept = await svc.storage.table(svc.names.dead_letters).get(RAW_PARTITION, poisoned.id)
    assert kept is not None and verbatim(dict(kept.entity)) == text.encode()
    assert "not base64" in str(kept.entity["Reason"])


@SETTINGS
@given(st.one_of(BODIES, st.sampled_from([b"", b"\x00", b"{}"])))
async def test_any_bytes_the_host_gave_up_on_are_recorded(svc: Services, body: bytes) -> None:
    """What the host moves to the poison queue after maxDequeueCount (any bytes, re-encoded as base64)
    is DeadLettered on its ledger row when it is that row's request, else kept verbatim."""
    body = body[:MAX_PAYLOAD_BYTES]
    sent = await _queue(svc, svc.settings.poison_queue).send_message(base64.b64encode(body).decode())
    await svc.reconcile.run()
    assert await svc.poison.depth() == 0
    kept = await _dead_letter_of(svc, sent.id)
    if kept is None:  # matched a ledger row: it holds this very request
        rows = [r for r in [await svc.ledger.get(i) for i in _candidate_ids(svc, body)] if r is not None]
        assert rows, "neither a dead letter nor a ledger row"
    else:
        assert kept == body


async def test_a_64_kib_message_is_kept_whole(svc: Services) -> None:
    """The largest text a queue message holds (64 KiB, here with characters beyond the BMP) is kept
    whole, not cut at 60,000 characters."""
    text = ("{not json " + "😀" * 50 + "}") * 200
    text = (text * (65_536 // len(text.encode()) + 1)).encode()[:65_000].decode(errors="ignore")
    sent = await send_raw(_queue(svc, svc.settings.poison_queue), text)
    await svc.reconcile.run()
    assert await _dead_letter_of(svc, sent.id) == text.encode()


async def test_a_poisoned_request_is_dead_lettered_on_its_row(svc: Services) -> None:
    """A request the host gave up on (here: a valid SMS whose sends failed) is DeadLettered on its own
    ledger row, with the reason, and leaves no raw copy."""
    body = json.dumps({"id": "gave-up-1", "channel": "sms", "to": "+14255550100", "content": {"text": "x"}}).encode()
    accepted = await svc.intake.submit(body)
    assert accepted.accepted
    [queued] = await svc.outbound.receive(1)
    sent = await send_raw(_queue(svc, svc.settings.poison_queue), queued.text)
    await svc.reconcile.run()
    row = await svc.ledger.get("gave-up-1")
    assert row is not None and row.status == Status.DEAD_LETTERED and "maxDequeueCount" in row.get("Reason")
    assert await _dead_letter_of(svc, sent.id) is None


async def test_a_body_that_only_names_an_id_does_not_dead_letter_that_message(svc: Services) -> None:
    """Garbage carrying another message's id is kept raw; the other message's row is untouched."""
    assert (await svc.intake.submit(json.dumps({"id": "victim-1", "channel": "sms", "to": "+14255550100",
                                                 "content": {"text": "x"}}).encode())).accepted  # fmt: skip
    garbage = json.dumps({"id": "victim-1", "channel": "sms", "junk": [1, 2]}).encode()
    sent = await _queue(svc, svc.settings.poison_queue).send_message(base64.b64encode(garbage).decode())
    await svc.reconcile.run()
    row = await svc.ledger.get("victim-1")
    assert row is not None and row.status == Status.ACCEPTED
    assert await _dead_letter_of(svc, sent.id) == garbage


async def test_retention_purges_a_rejected_body_of_any_shape(svc: Services, clock) -> None:  # type: ignore[no-untyped-def]
    """A Rejected row keeps its body verbatim, 10,000 brackets deep or not UTF-8; when its content is
    due for purging, retention clears it like any other instead of failing on every run."""
    bodies = [b"[" * 10_000 + b"]" * 10_000, b"\xff\xfe not text", b'{"to": ' + b"9" * 5_000 + b"}"]
    for body in bodies:
        assert await svc.sending.handle(QueueDelivery(body, "q", 1)) == Outcome.REJECTED
    clock.advance(days=8)
    await svc.retention.run()
    for body in bodies:
        row = await svc.ledger.get(content_id(svc.settings.consent_hash_key, body))
        assert row is not None and not join_payload(dict(row.entity))


async def test_a_body_naming_a_rejected_id_is_kept_raw(svc: Services) -> None:
    """A poisoned body under the id of a Rejected row is not that row's request: it is kept verbatim."""
    assert await svc.sending.handle(QueueDelivery(b'{"id": "rej-1", "channel": "sms"}', "q", 1)) == Outcome.REJECTED
    other = b'{"id": "rej-1", "channel": "sms", "to": 5}'
    sent = await _queue(svc, svc.settings.poison_queue).send_message(base64.b64encode(other).decode())
    await svc.reconcile.run()
    assert await _dead_letter_of(svc, sent.id) == other
