"""The status feed end to end (issue 17): the app in the local runner publishes to the local Event Grid
topic, which delivers to a webhook subscriber. Through runner kills, duplicate and reordered reports and a
publish outage, the subscriber ends with every transition of every message, and after dedupe by event id
exactly the ledger's history: contiguous sequence numbers ending at the status the ledger holds.

The kills are in `test_send_e2e.py::test_runner_killed_five_times_loses_nothing_and_sends_nothing_twice`,
which runs its 300 mixed messages with the feed on and checks the subscriber with `sweep_until_caught_up`
(one run of 300 messages proves both guarantees, and keeps the suite short)."""

from __future__ import annotations

import asyncio
from typing import Any

from devstack.eventgrid import DEFAULT_KEY, LocalTopic
from devstack.feedsink import FeedSink
from shared.models import Status
from shared.status import TERMINAL
from tests.bodies import email, sms, whatsapp
from tests.e2e.conftest import Stack, all_final, wait_until

SETTLED = frozenset(TERMINAL | {Status.SENT})
# Recipients whose emulator plans report twice, out of order, in reverse, or not at all.
MAKERS = (
    lambda i: sms(i, to="+14255550104"),  # duplicate reports
    lambda i: sms(i, to="+14255550105"),  # reports out of order
    lambda i: sms(i, to="+14255550101"),  # failed by the carrier
    lambda i: email(i, to="eve+duplicate@example.com"),
    lambda i: email(i, to="ann+reorder@example.com"),
    lambda i: email(i, to="bob+bounce@example.com"),
    lambda i: whatsapp(i, to="+14255550107"),  # sent, delivered, read
    lambda i: whatsapp(i, to="+14255550105"),  # statuses in reverse
)


async def fed_stack(make_stack: Any, topic: LocalTopic, **overrides: str) -> Stack:
    stack: Stack = await make_stack(FEED_TOPIC_ENDPOINT=topic.endpoint, FEED_TOPIC_KEY=DEFAULT_KEY, **overrides)
    return stack


async def ledger_histories(stack: Stack, ids: list[str]) -> dict[str, tuple[Status, int]]:
    rows = await asyncio.gather(*(stack.svc.ledger.get(i) for i in ids))
    return {i: (r.status, r.feed_sequence) for i, r in zip(ids, rows, strict=True) if r is not None}


def _mismatches(sink: FeedSink, ledger: dict[str, tuple[Status, int]]) -> list[str]:
    """Messages whose deduplicated feed is not 1..n ending at the ledger's status (n = its sequence)."""
    histories = sink.histories()
    wrong = []
    for message_id, (status, sequence) in ledger.items():
        events = histories.get(message_id, [])
        numbers = [int(e["data"]["sequence"]) for e in events]
        if numbers != list(range(1, sequence + 1)) or not events or events[-1]["data"]["status"] != status.value:
            wrong.append(message_id)
    return wrong


async def sweep_until_caught_up(stack: Stack, sink: FeedSink, ids: list[str], timeout: float) -> list[str]:
    """Run the reconcile sweep (an hour on) until the subscriber has every message's whole feed."""
    stack.clock.advance(hours=1)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await stack.svc.reconcile.run()
        assert stack.svc.feed is not None
        await stack.svc.feed.drain()
        await asyncio.sleep(1.0)
        wrong = _mismatches(sink, await ledger_histories(stack, ids))
        if not wrong or loop.time() > deadline:
            return wrong


async def test_a_publish_outage_loses_nothing(make_stack: Any, feed: tuple[LocalTopic, FeedSink]) -> None:
    """Every publish fails (503) while 60 messages go through; when the topic is back, the reconcile
    sweep publishes every change, and the sends and reports were never held up by the outage."""
    topic, sink = feed
    stack = await fed_stack(make_stack, topic)
    topic.fail_publishes(503, 100_000)
    ids = [f"outage-{i}" for i in range(60)]
    for i, message_id in enumerate(ids):
        await stack.svc.intake.submit(MAKERS[i % len(MAKERS)](message_id))
    await wait_until(lambda: all_final(stack, ids, SETTLED), 60, "all 60 to settle during the outage")
    assert sink.histories() == {}
    topic.clear_faults()
    assert await sweep_until_caught_up(stack, sink, ids, timeout=60) == []
