"""The send recipe (`SendService.handle`), one rule per test, over in-memory storage and a scripted
provider. The same rules run against Azurite and the ACS emulator in tests/integration."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from shared.errors import SendRejected, Throttled, TransientError
from shared.ids import content_id
from shared.models import Channel, Status
from shared.runtime import Services
from shared.schema import LedgerRow, ledger_row_key, public_columns
from shared.services.consent import ALL_SENDERS, ConsentState
from shared.services.gates import PAUSE_RECHECK_SECONDS
from shared.services.outcomes import Outcome
from tests.bodies import email, sms
from tests.fakes import (
    FakeClock,
    MemoryStorage,
    MemoryTable,
    ScriptedProvider,
    memory_services,
    unit_settings,
)
from tests.unit.conftest import deliver


def _messages(svc: Services, storage: MemoryStorage) -> MemoryTable:
    return storage.table(svc.names.messages)


async def _row(svc: Services, message_id: str) -> LedgerRow:
    row = await svc.ledger.get(message_id)
    assert row is not None, f"no ledger row for {message_id}"
    return row


def _requeued(storage: MemoryStorage, svc: Services) -> list[tuple[str, float]]:
    return [(q.body, q.delay_seconds) for q in storage.queue(svc.settings.send_queue).sent]


# -- the way through ----------------------------------------------------------------------------------


async def test_a_valid_request_is_sent_and_its_insert_is_the_claim(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider
) -> None:
    """Two ledger writes in all: the insert (already Sending, generation 1) and Sent."""
    assert await deliver(svc, sms("ok-1")) == Outcome.SENT
    row = await _row(svc, "ok-1")
    assert row.status == Status.SENT
    assert row.provider_message_id == "acs-1"
    assert row.attempts == 1 and row.generation == 1
    assert set(row.times) == {Status.ACCEPTED, Status.SENDING, Status.SENT}
    assert _messages(svc, storage).writes == 2
    assert [c.message_id for c in provider.calls] == ["ok-1"]
    assert provider.calls[0].repeatability_id == row.repeatability_id


async def test_a_sent_message_gets_its_report_deadline(svc: Services, clock: FakeClock) -> None:
    assert await deliver(svc, sms("deadline-1")) == Outcome.SENT
    due = await svc.due.due(clock() + timedelta(days=2))
    assert [(e.message_id, e.kind.value) for e in due] == [("deadline-1", "sla")]


async def test_a_duplicate_delivery_sends_nothing_more(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider
) -> None:
    body = sms("dup-1")
    assert await deliver(svc, body) == Outcome.SENT
    writes = _messages(svc, storage).writes
    for _ in range(3):
        assert await deliver(svc, body, dequeue_count=2) == Outcome.DUPLICATE
    assert len(provider.calls) == 1
    assert _messages(svc, storage).writes == writes
    assert (await _row(svc, "dup-1")).status == Status.SENT


# -- the gates ------------------------------------------------------------------------------------------


async def test_an_expired_request_ends_expired_unsent(
    svc: Services, provider: ScriptedProvider, clock: FakeClock
) -> None:
    expires = clock() + timedelta(minutes=5)
    body = sms("exp-1", expiresAt=expires.isoformat())
    clock.advance(minutes=6)
    assert await deliver(svc, body) == Outcome.EXPIRED
    row = await _row(svc, "exp-1")
    assert row.status == Status.EXPIRED and row.reason
    assert provider.calls == []


async def test_a_paused_channel_requeues_and_leaves_the_row_accepted(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider, clock: FakeClock
) -> None:
    await svc.control.pause("sms", actor="test", reason="incident", now=clock())
    assert await deliver(svc, sms("paused-1")) == Outcome.RESCHEDULED
    assert (await _row(svc, "paused-1")).status == Status.ACCEPTED
    [(body, delay)] = _requeued(storage, svc)
    assert delay == PAUSE_RECHECK_SECONDS
    assert provider.calls == []
    await svc.control.resume("sms", actor="test", reason="over", now=clock())
    assert await deliver(svc, body) == Outcome.SENT
    assert (await _row(svc, "paused-1")).status == Status.SENT


async def test_an_opted_out_recipient_is_suppressed(
    svc: Services, provider: ScriptedProvider, clock: FakeClock
) -> None:
    to = "+14255550111"
    await svc.consent.set_state(
        Channel.SMS, to, ALL_SENDERS, ConsentState.OPTED_OUT, reason="STOP", actor="test", now=clock()
    )
    assert await deliver(svc, sms("stop-1", to=to)) == Outcome.SUPPRESSED
    row = await _row(svc, "stop-1")
    assert row.status == Status.SUPPRESSED and row.reason and "opted-out" in row.reason
    assert provider.calls == []


async def test_over_the_rate_requeues_and_writes_nothing(provider: ScriptedProvider, clock: FakeClock) -> None:
    storage = MemoryStorage()
    svc = await memory_services(storage, provider, clock, unit_settings(RATE_LIMITS='{"sms": 1}'))
    assert await deliver(svc, sms("rate-1")) == Outcome.SENT
    writes = {name: table.writes for name, table in storage.tables_by_name.items()}
    assert await deliver(svc, sms("rate-2")) == Outcome.RESCHEDULED
    assert {name: table.writes for name, table in storage.tables_by_name.items()} == writes
    assert await svc.ledger.get("rate-2") is None
    [(body, delay)] = _requeued(storage, svc)
    assert json.loads(body)["id"] == "rate-2" and delay > 0.5
    assert [c.message_id for c in provider.calls] == ["rate-1"]


# -- what ACS answers ------------------------------------------------------------------------------------


async def test_a_429_gives_the_claim_back_and_requeues(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider
) -> None:
    provider.sends = [Throttled(30.0)]
    assert await deliver(svc, sms("429-1")) == Outcome.RESCHEDULED
    row = await _row(svc, "429-1")
    assert row.status == Status.ACCEPTED and row.throttles == 1
    [(body, delay)] = _requeued(storage, svc)
    assert 30.0 <= delay <= 36.0
    assert await deliver(svc, body) == Outcome.SENT
    assert (await _row(svc, "429-1")).status == Status.SENT
    assert len(provider.calls) == 2


async def test_a_permanent_refusal_ends_failed(svc: Services, provider: ScriptedProvider) -> None:
    provider.sends = [SendRejected("InvalidRecipient", "no such number")]
    assert await deliver(svc, sms("perm-1")) == Outcome.FAILED
    row = await _row(svc, "perm-1")
    assert row.status == Status.FAILED and row.reason and "InvalidRecipient" in row.reason
    assert await deliver(svc, sms("perm-1")) == Outcome.DUPLICATE
    assert len(provider.calls) == 1


async def test_a_failure_acs_certainly_did_not_act_on_gives_the_claim_back(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider
) -> None:
    provider.sends = [TransientError("connection refused", may_have_sent=False)]
    assert await deliver(svc, sms("refused-1")) == Outcome.RESCHEDULED
    row = await _row(svc, "refused-1")
    assert row.status == Status.ACCEPTED and row.retries == 1 and row.uncertain_generation is None
    [(body, _)] = _requeued(storage, svc)
    assert await deliver(svc, body) == Outcome.SENT


async def test_a_failure_that_may_have_sent_resends_the_same_send_inside_the_window(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider, clock: FakeClock
) -> None:
    """The row stays Sending; the next delivery goes through recovery, which resends under the same
    repeatability id while ACS still deduplicates it."""
    provider.sends = [TransientError("gateway timeout", may_have_sent=True)]
    assert await deliver(svc, sms("maybe-1")) == Outcome.RESCHEDULED
    row = await _row(svc, "maybe-1")
    assert row.status == Status.SENDING and row.uncertain_generation == 1 and row.retries == 1
    [(body, _)] = _requeued(storage, svc)
    clock.advance(minutes=3)
    assert await deliver(svc, body) == Outcome.SENT
    first, second = provider.sent_ids("maybe-1")
    assert first == second
    assert (await _row(svc, "maybe-1")).status == Status.SENT


async def test_past_the_window_an_at_most_once_message_becomes_unknown(
    svc: Services, provider: ScriptedProvider, clock: FakeClock
) -> None:
    provider.sends = [TransientError("gateway timeout", may_have_sent=True)]
    assert await deliver(svc, sms("maybe-2")) == Outcome.RESCHEDULED
    clock.advance(minutes=5)
    assert await deliver(svc, sms("maybe-2")) == Outcome.UNKNOWN
    assert (await _row(svc, "maybe-2")).status == Status.UNKNOWN
    assert len(provider.calls) == 1


async def test_past_the_window_an_at_least_once_message_is_resent_under_new_ids(
    svc: Services, provider: ScriptedProvider, clock: FakeClock
) -> None:
    body = sms("maybe-3", delivery="at-least-once")
    provider.sends = [TransientError("gateway timeout", may_have_sent=True)]
    assert await deliver(svc, body) == Outcome.RESCHEDULED
    clock.advance(minutes=5)
    assert await deliver(svc, body) == Outcome.SENT
    first, second = provider.sent_ids("maybe-3")
    assert first != second
    row = await _row(svc, "maybe-3")
    assert row.status == Status.SENT and row.generation == 2


@pytest.mark.parametrize(
    ("acs_says", "outcome"), [(None, Outcome.SENT), ("Running", Outcome.SENT), ("Failed", Outcome.FAILED)]
)
async def test_an_email_in_doubt_is_resolved_by_asking_acs(
    svc: Services, provider: ScriptedProvider, acs_says: str | None, outcome: Outcome
) -> None:
    """Email has no repeatability ids: recovery asks ACS, and resends only if ACS never saw it."""
    provider.sends = [TransientError("gateway timeout", may_have_sent=True)]
    assert await deliver(svc, email("mail-1")) == Outcome.RESCHEDULED
    provider.email_statuses = [acs_says]
    assert await deliver(svc, email("mail-1")) == outcome
    assert len(provider.status_queries) == 1
    assert len(provider.calls) == (2 if acs_says is None else 1)


async def test_the_retry_budget_once_spent_raises_for_the_host(svc: Services, provider: ScriptedProvider) -> None:
    budget = svc.settings.send_retry.attempts
    provider.sends = [TransientError("down", may_have_sent=False) for _ in range(budget + 1)]
    for _ in range(budget):
        assert await deliver(svc, sms("budget-1")) == Outcome.RESCHEDULED
    with pytest.raises(TransientError):
        await deliver(svc, sms("budget-1"))
    assert (await _row(svc, "budget-1")).retries == budget + 1


async def test_a_copy_racing_a_send_in_flight_ends_without_a_storage_race(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider
) -> None:
    """The first delivery is inside ACS's send; a copy reads the row (Sending) and, before it claims it,
    the first send records Sent."""
    in_send, release = asyncio.Event(), asyncio.Event()
    tasks: dict[str, asyncio.Future[Outcome]] = {}

    async def hold_the_first_send() -> None:
        if asyncio.current_task() is tasks.get("first"):
            in_send.set()
            await release.wait()

    async def claim_after_the_first_is_done(op: str) -> None:
        if asyncio.current_task() is tasks.get("second") and op == "update":
            release.set()
            await asyncio.wait([tasks["first"]])

    provider.pause = hold_the_first_send
    _messages(svc, storage).before = claim_after_the_first_is_done
    tasks["first"] = asyncio.ensure_future(deliver(svc, sms("race-1")))
    await asyncio.wait_for(in_send.wait(), 5)
    tasks["second"] = asyncio.ensure_future(deliver(svc, sms("race-1")))
    done, _ = await asyncio.wait(tasks.values(), timeout=5)
    assert len(done) == 2
    assert tasks["first"].result() == Outcome.SENT
    assert tasks["second"].result() in {Outcome.DUPLICATE, Outcome.SENT}
    assert len(set(provider.sent_ids("race-1"))) == 1


async def test_a_copy_of_an_email_whose_send_is_in_flight_does_not_send_it_again(
    svc: Services, provider: ScriptedProvider
) -> None:
    in_send, release = asyncio.Event(), asyncio.Event()
    tasks: dict[str, asyncio.Future[Outcome]] = {}

    async def hold_the_first_send() -> None:
        if asyncio.current_task() is tasks.get("first"):
            in_send.set()
            await release.wait()

    provider.pause = hold_the_first_send
    tasks["first"] = asyncio.ensure_future(deliver(svc, email("mail-race")))
    await asyncio.wait_for(in_send.wait(), 5)
    copy = await asyncio.wait_for(deliver(svc, email("mail-race")), 5)
    release.set()
    first = await asyncio.wait_for(tasks["first"], 5)
    assert {first, copy} <= {Outcome.SENT, Outcome.DUPLICATE, Outcome.RESCHEDULED}
    assert provider.acted_on("mail-race") == 1


# -- input that is not a request, and ids -------------------------------------------------------------


async def test_invalid_json_is_rejected_with_field_errors(svc: Services, provider: ScriptedProvider) -> None:
    body = b'{"id": "broken", "channel": "sms", '
    assert await deliver(svc, body) == Outcome.REJECTED
    row = await _row(svc, content_id(svc.settings.consent_hash_key, body))
    assert row.status == Status.REJECTED
    assert row.errors and json.loads(row.errors)[0]["field"]
    assert row.payload == body.decode()
    assert provider.calls == []
    assert await deliver(svc, body) == Outcome.DUPLICATE


async def test_a_request_breaking_a_rule_is_rejected_under_its_id(svc: Services, provider: ScriptedProvider) -> None:
    assert await deliver(svc, sms("bad-to", to="12345")) == Outcome.REJECTED
    row = await _row(svc, "bad-to")
    assert row.status == Status.REJECTED and row.errors
    assert [e["field"] for e in json.loads(row.errors)] == ["to"]
    assert provider.calls == []


async def test_an_id_reused_by_another_request_is_refused_and_traced(
    svc: Services, storage: MemoryStorage, provider: ScriptedProvider
) -> None:
    assert await deliver(svc, sms("reuse-1", text="first")) == Outcome.SENT
    assert await deliver(svc, sms("reuse-1", text="second")) == Outcome.ID_REUSED
    assert await deliver(svc, sms("reuse-1", text="second")) == Outcome.ID_REUSED  # one trace, not two
    history = [e async for e in _messages(svc, storage).query("PartitionKey eq @pk", {"pk": "reuse-1"})]
    conflicts = [e for e in history if e["RowKey"].startswith("conflict|")]
    assert len(conflicts) == 1 and conflicts[0]["EventType"] == "IdReused"
    assert len(provider.calls) == 1
    assert (await _row(svc, "reuse-1")).status == Status.SENT


async def test_a_rejected_row_gives_way_to_a_valid_request(svc: Services, provider: ScriptedProvider) -> None:
    assert await deliver(svc, sms("fix-1", to="nope")) == Outcome.REJECTED
    assert await deliver(svc, sms("fix-1")) == Outcome.SENT
    row = await _row(svc, "fix-1")
    assert row.status == Status.SENT
    assert [c.message_id for c in provider.calls] == ["fix-1"]


async def test_a_row_that_gave_way_keeps_nothing_of_the_rejection(svc: Services, storage: MemoryStorage) -> None:
    assert await deliver(svc, sms("fix-2", to="nope")) == Outcome.REJECTED
    assert await deliver(svc, sms("fix-2")) == Outcome.SENT
    stored = _messages(svc, storage).entity("fix-2", ledger_row_key("fix-2"))
    assert stored is not None
    assert {"Errors", "Reason", "RejectedAt"}.isdisjoint(stored)
    shown = public_columns(await _row(svc, "fix-2"))
    assert "reason" not in shown and "rejectedAt" not in shown
