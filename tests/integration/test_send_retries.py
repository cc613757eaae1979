"""Transient failures back off without poisoning or duplicating; email recovery asks ACS before resending;
a 403 from ACS is `acs-forbidden`. Against Azurite and the ACS emulator through the official SDKs."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from devstack.acs import AcsEmulator
from devstack.azurite import Azurite
from shared.adapters.acs import AcsSenders, parse_acs_connection
from shared.clock import iso
from shared.errors import TransientError
from shared.ids import operation_id, repeatability_id
from shared.models import Status
from shared.runtime import Services, build_services
from shared.services.decoding import QueueDelivery
from shared.services.outcomes import Outcome
from shared.services.providers import AcsProvider
from shared.settings import AcsTimeouts, load_settings
from tests.bodies import email, sms
from tests.integration.conftest import Clock, app_env, serving


def _delivery(body: bytes) -> QueueDelivery:
    return QueueDelivery(body, uuid.uuid4().hex, 1)


def _posts(acs: AcsEmulator, route: str) -> int:
    return acs.request_counts().get(route, 0)


async def test_an_email_whose_sent_write_was_lost_is_asked_for_not_resent(
    svc: Services, acs: AcsEmulator, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies between the send and the Sent write; the redelivery, once the claim's lease has
    passed (the queue itself redelivers only after its 10-minute lock), asks ACS for the operation and
    records Sent: one POST, one GET, one send."""
    mark_sent = svc.sending.steps.dispatcher.mark_sent

    async def die(*_: Any) -> None:
        raise RuntimeError("the worker died before recording Sent")

    monkeypatch.setattr(svc.sending.steps.dispatcher, "mark_sent", die)
    with pytest.raises(RuntimeError):
        await svc.sending.handle(_delivery(email("mail-died")))
    monkeypatch.setattr(svc.sending.steps.dispatcher, "mark_sent", mark_sent)
    assert await svc.sending.handle(_delivery(email("mail-died"))) == Outcome.RESCHEDULED  # a live claim?
    assert _posts(acs, "emailStatus") == 0
    clock.advance(seconds=AcsTimeouts().claim_lease.total_seconds() + 1)
    assert await svc.sending.handle(_delivery(email("mail-died"))) == Outcome.SENT
    assert (_posts(acs, "email"), _posts(acs, "emailStatus")) == (1, 1)
    assert len(acs.sends("email")) == 1
    row = await svc.ledger.get("mail-died")
    assert row is not None and row.status == Status.SENT


async def test_an_email_that_never_reached_acs_is_sent_on_recovery(svc: Services, acs: AcsEmulator) -> None:
    """The connection dies before ACS handles the send: recovery finds no operation (404) and sends it."""
    acs.add_fault("drop", count=1, channel="email", phase="before")
    assert await svc.sending.handle(_delivery(email("mail-lost"))) == Outcome.RESCHEDULED
    assert acs.sends("email") == []
    assert await svc.sending.handle(_delivery(email("mail-lost"))) == Outcome.SENT
    assert [s.operation_id for s in acs.sends("email")] == [operation_id("mail-lost")]
    assert _posts(acs, "emailStatus") == 1


async def test_a_refused_send_past_the_window_goes_out_under_fresh_ids(
    svc: Services, acs: AcsEmulator, clock: Clock
) -> None:
    """ACS rejects a Repeatability-First-Sent older than its window, so a retry of a send ACS refused
    (503) moves to the next generation of ids; nothing of the first can have reached ACS."""
    acs.add_fault("503", count=1, channel="sms")
    assert await svc.sending.handle(_delivery(sms("late-retry"))) == Outcome.RESCHEDULED
    clock.advance(minutes=6)
    assert await svc.sending.handle(_delivery(sms("late-retry"))) == Outcome.SENT
    assert [s.repeatability_id for s in acs.sends("sms")] == [repeatability_id("late-retry", 2)]


async def test_a_send_that_may_have_reached_acs_is_never_given_back(
    svc: Services, acs: AcsEmulator, clock: Clock
) -> None:
    """A lost connection, then a 503 on the resend: the row stays Sending, so past the window the
    at-most-once policy decides (Unknown) instead of a fresh send that could duplicate it."""
    acs.add_fault("drop", count=1, channel="sms", phase="after")  # ACS has it; the answer is lost
    assert await svc.sending.handle(_delivery(sms("uncertain"))) == Outcome.RESCHEDULED
    acs.add_fault("503", count=1, channel="sms")
    assert await svc.sending.handle(_delivery(sms("uncertain"))) == Outcome.RESCHEDULED
    row = await svc.ledger.get("uncertain")
    assert row is not None and row.status == Status.SENDING and row.get("Retries") == 2
    clock.advance(minutes=6)
    assert await svc.sending.handle(_delivery(sms("uncertain"))) == Outcome.UNKNOWN
    assert len(acs.sends("sms")) == 1


async def test_the_retry_budget_spent_hands_the_failure_to_the_host(
    azurite: Azurite, acs: AcsEmulator, clock: Clock
) -> None:
    """After SEND_RETRY's attempts the failure is raised, so the host retries and poisons the message."""
    acs.reset()
    settings = load_settings(app_env(azurite, acs, SEND_RETRY=json.dumps({"baseSeconds": 1, "attempts": 2})))
    services = await build_services(settings, clock=clock)
    try:
        acs.add_fault("503", count=3, channel="sms")
        outcomes = [await services.sending.handle(_delivery(sms("spent"))) for _ in range(2)]
        assert outcomes == [Outcome.RESCHEDULED, Outcome.RESCHEDULED]
        with pytest.raises(TransientError, match="503"):
            await services.sending.handle(_delivery(sms("spent")))
        row = await services.ledger.get("spent")
        assert row is not None and row.get("Retries") == 3
    finally:
        acs.clear_faults()
        await services.close()


@pytest.fixture
async def forbidding_acs() -> AsyncIterator[str]:
    """An endpoint that answers every ACS call as ACS does when the caller's identity has no role: 403."""

    async def forbid(request: web.Request) -> web.Response:
        await request.read()
        error = {"error": {"code": "Forbidden", "message": "The principal does not have the required permissions."}}
        return web.json_response(error, status=403)

    async with serving(forbid) as port:
        yield f"endpoint=http://127.0.0.1:{port}/;accesskey=" + "a2V5" * 8


async def test_a_403_holds_the_message_and_raises_acs_forbidden(
    azurite: Azurite, acs: AcsEmulator, clock: Clock, forbidding_acs: str, caplog: pytest.LogCaptureFixture
) -> None:
    """ACS refusing the app's identity is not the message's fault: it is held (Accepted, re-enqueued with
    the long backoff), never Failed, and a warning plus the `acs_forbidden` counter are recorded."""
    settings = load_settings(app_env(azurite, acs))
    provider = AcsProvider(AcsSenders(parse_acs_connection(forbidding_acs, None)))
    services = await build_services(settings, provider=provider, clock=clock)
    try:
        with caplog.at_level(logging.INFO, logger="shared"):
            assert await services.sending.handle(_delivery(sms("no-role"))) == Outcome.RESCHEDULED
        row = await services.ledger.get("no-role")
        assert row is not None and row.status == Status.ACCEPTED
        assert row.get("LastError").startswith("acs-forbidden: provider answered 403")
        assert await services.outbound.depth() == 1
        dims = [r.__dict__ for r in caplog.records]
        assert any(d.get("event") == "message.forbidden" and d.get("reason") == "acs-forbidden" for d in dims)
        assert any(d.get("metric_name") == "acs_forbidden" for d in dims)
        retry = next(d for d in dims if d.get("event") == "message.retry_scheduled")
        assert retry["reason"] == "acs-forbidden" and retry["retry_after"] >= 30
    finally:
        await services.close()


async def test_a_429_on_the_status_query_keeps_the_recovering_claim(
    svc: Services, acs: AcsEmulator, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recovering an email whose send may have happened, a 429 on the GET re-enqueues it but keeps the row
    Sending, so the next attempt asks again instead of sending blind."""
    mark_sent = svc.sending.steps.dispatcher.mark_sent

    async def die(*_: Any) -> None:
        raise RuntimeError("the worker died before recording Sent")

    monkeypatch.setattr(svc.sending.steps.dispatcher, "mark_sent", die)
    with pytest.raises(RuntimeError):
        await svc.sending.handle(_delivery(email("mail-429")))
    monkeypatch.setattr(svc.sending.steps.dispatcher, "mark_sent", mark_sent)
    clock.advance(seconds=AcsTimeouts().claim_lease.total_seconds() + 1)
    acs.add_fault("429", count=1, channel="email")
    assert await svc.sending.handle(_delivery(email("mail-429"))) == Outcome.RESCHEDULED
    row = await svc.ledger.get("mail-429")
    assert row is not None and row.status == Status.SENDING
    assert await svc.sending.handle(_delivery(email("mail-429"))) == Outcome.SENT
    assert _posts(acs, "email") == 1 and len(acs.sends("email")) == 1


async def test_a_replay_starts_a_new_retry_budget(azurite: Azurite, acs: AcsEmulator, clock: Clock) -> None:
    """A message whose budget ran out and that an operator replays gets its backoff again, instead of
    going straight back to the poison queue on its first failure."""
    acs.reset()
    settings = load_settings(app_env(azurite, acs, SEND_RETRY=json.dumps({"baseSeconds": 1, "attempts": 1})))
    services = await build_services(settings, clock=clock)
    try:
        acs.add_fault("503", count=3, channel="sms")
        assert await services.sending.handle(_delivery(sms("replayed"))) == Outcome.RESCHEDULED
        with pytest.raises(TransientError):
            await services.sending.handle(_delivery(sms("replayed")))
        clock.advance(seconds=1)
        await services.ledger.change("replayed", lambda r: replace(r, replayed_at=iso(clock())))
        assert await services.sending.handle(_delivery(sms("replayed"))) == Outcome.RESCHEDULED
        row = await services.ledger.get("replayed")
        assert row is not None and row.get("Retries") == 1
    finally:
        acs.clear_faults()
        await services.close()
