"""Rules of the send recipe that hold for a whole class of inputs: any interleaving of duplicate
deliveries, any sequence of answers from ACS. In memory, so hypothesis can try many of each."""

from __future__ import annotations

import asyncio
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import Throttled, TransientError
from shared.ids import operation_id
from shared.models import Status
from shared.runtime import Services
from shared.services.outcomes import Outcome
from tests.bodies import email, sms, whatsapp
from tests.fakes import Answer, FakeClock, MemoryStorage, ScriptedProvider, memory_services, random_yields
from tests.unit.conftest import deliver

# What ACS may answer a send: "lost" is a 500 or a timeout after the request went out (ACS may have
# acted on it), "refused" a failure before it reached ACS.
ANSWERS = ("ok", "429", "lost", "refused")

BODIES = {"sms": sms, "whatsapp": whatsapp, "email": email}


def _answer(name: str, index: int) -> Answer:
    if name == "ok":
        return f"acs-{index}"
    if name == "429":
        return Throttled(20.0)
    return TransientError(name, may_have_sent=name == "lost")


async def _instances(
    storage: MemoryStorage, provider: ScriptedProvider, clock: FakeClock, count: int
) -> list[Services]:
    """`count` instances of the app (each with its own caches and locks) over one storage account."""
    return [await memory_services(storage, provider, clock) for _ in range(count)]


@settings(max_examples=60, deadline=None)
@given(
    channel=st.sampled_from(["sms", "whatsapp", "email"]),
    copies=st.integers(2, 5),
    instances=st.integers(1, 3),
    rng=st.randoms(use_true_random=False),
)
async def test_any_interleaving_of_duplicate_deliveries_reaches_acs_once(
    channel: str, copies: int, instances: int, rng: random.Random
) -> None:
    """Copies of one request delivered at once, to one or several instances: ACS acts on one send (a
    resend that recovery makes carries the first send's repeatability id; an email copy that meets a live
    claim waits for it instead of asking ACS) and the message ends Sent. No storage race escapes a
    delivery, and a copy that was re-scheduled sends nothing when it comes back."""
    pause = random_yields(rng)
    storage, provider, clock = MemoryStorage(pause), ScriptedProvider(pause=pause), FakeClock()
    apps = await _instances(storage, provider, clock, instances)
    body = BODIES[channel]("dup-any")
    outcomes = await asyncio.gather(
        *(deliver(apps[i % instances], body) for i in range(copies)), return_exceptions=True
    )
    assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
    assert Outcome.SENT in outcomes
    clock.advance(minutes=2)  # past the claim lease
    for _ in (o for o in outcomes if o == Outcome.RESCHEDULED):
        assert await deliver(apps[0], body, dequeue_count=2) == Outcome.DUPLICATE
    assert provider.acted_on("dup-any") == 1, provider.calls
    row = await apps[0].ledger.get("dup-any")
    assert row is not None and row.status == Status.SENT


@settings(max_examples=120, deadline=None)
@given(
    channel=st.sampled_from(["sms", "email"]),
    answers=st.lists(st.sampled_from(ANSWERS), max_size=6),
    waits=st.lists(st.integers(0, 6), min_size=12, max_size=12),
)
async def test_whatever_acs_answers_an_at_most_once_message_is_acted_on_at_most_once(
    channel: str, answers: list[str], waits: list[int]
) -> None:
    """Deliver the request, then each re-enqueued copy after a wait of 0 to 6 minutes, whatever ACS
    answers. ACS acts on one send at most (SMS: one repeatability id; email: one send that reached it,
    since recovery asks ACS first); the message ends Sent under ACS's id, or Unknown after a send that
    may have happened, or is still waiting."""
    storage, provider, clock = MemoryStorage(), ScriptedProvider(), FakeClock()
    provider.sends = [_answer(name, i) for i, name in enumerate(answers)]
    [app] = await _instances(storage, provider, clock, 1)
    queue = storage.queue(app.settings.send_queue)
    body = BODIES[channel]("once-any").decode()
    for wait in waits:
        try:
            outcome = await deliver(app, body)
        except TransientError:  # the retry budget is spent: the host retries, then poisons it
            break
        if outcome != Outcome.RESCHEDULED:
            break
        body = queue.sent[-1].body
        clock.advance(minutes=wait)
    assert provider.acted_on("once-any") <= 1
    row = await app.ledger.get("once-any")
    assert row is not None
    if row.status == Status.SENT:
        ids_from_acs = {f"acs-{i}" for i in range(len(answers) + 20)} | {operation_id("once-any")}
        assert row.provider_message_id in ids_from_acs
    elif row.status == Status.UNKNOWN:
        assert "lost" in answers
    else:
        assert row.status in {Status.ACCEPTED, Status.SENDING}
