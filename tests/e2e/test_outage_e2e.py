"""A provider outage longer than the host's own retries: the backlog waits it out, nothing is poisoned or
sent twice (issue 15, finding 2). The app runs in the local Functions runner, on Azurite, against the ACS
emulator, whose fault lasts a fixed time and then clears by itself."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import pytest

from shared.ids import operation_id
from shared.models import Status
from tests.bodies import email, sms
from tests.e2e.conftest import all_final, wait_until

OUTAGE_SECONDS = 30
ENQUEUE_SECONDS = 16
# Production backoff is 5 s doubling to 5 min; the same mechanism with a 10 s cap keeps the test short.
# The cap is what bounds how long after the outage the last message goes out.
SEND_RETRY = {"baseSeconds": 2, "capSeconds": 10, "attempts": 30}


@pytest.mark.slow
async def test_a_long_acs_outage_delays_the_backlog_without_poisoning_or_duplicates(make_stack) -> None:  # type: ignore[no-untyped-def]
    """ACS answers 503 to everything for 30 s (three times visibilityTimeout x maxDequeueCount, about
    10 s: the host alone would have poisoned every message); 200 SMS and email enqueued meanwhile all
    end Delivered, none DeadLettered, each sent exactly once."""
    stack = await make_stack(SEND_RETRY=json.dumps(SEND_RETRY))
    stack.acs.add_fault("503", seconds=OUTAGE_SECONDS)
    started = time.monotonic()
    ids = [f"outage-{i}" for i in range(200)]
    # Producers keep enqueueing while ACS is down: spread over the first 30 s, so that the pipeline is
    # not slowed by its own backlog and each message really meets the outage at full speed.
    for i, message_id in enumerate(ids):
        await stack.svc.outbound.send((sms if i % 2 else email)(message_id).decode())
        await asyncio.sleep(max(0.0, started + ENQUEUE_SECONDS * (i + 1) / len(ids) - time.monotonic()))
    assert time.monotonic() - started < OUTAGE_SECONDS - 10  # the last ones too meet the outage

    delivered = frozenset({Status.DELIVERED})
    await wait_until(lambda: all_final(stack, ids, delivered), OUTAGE_SECONDS + 90, "all 200 to be delivered")
    assert time.monotonic() - started >= OUTAGE_SECONDS  # nothing got through while ACS was down

    statuses = await stack.statuses(ids)
    assert set(statuses.values()) == {Status.DELIVERED}
    assert await stack.svc.poison.depth() == 0
    rows = [await stack.svc.ledger.get(i) for i in ids]
    assert all(row is not None and int(row.get("Retries", 0)) >= 1 for row in rows)  # each one was refused
    sent = Counter([s.tag for s in stack.acs.sends("sms")] + [s.operation_id for s in stack.acs.sends("email")])
    expected = [i for n, i in enumerate(ids) if n % 2] + [operation_id(i) for n, i in enumerate(ids) if not n % 2]
    assert sent == Counter(expected)  # every one sent, none twice
    assert stack.acs.duplicates() == []
