"""Issue 14, item 3, through the local Functions runner: every message that reaches the poison queue
is recorded within one reconcile period, whatever its text, including text the host cannot decode
(which a queue trigger on `<queue>-poison` would hold invisible until it expired)."""

from __future__ import annotations

import base64

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from shared.schema import RAW_PARTITION
from tests.e2e.conftest import wait_until
from tests.property.strategies import QUEUE_TEXT
from tests.property.test_send_queue_nothing_lost import verbatim


def draw_texts(count: int) -> list[str]:
    """`count` distinct queue texts that are not base64 ("~" is no base64 character), so the host
    moves them to the poison queue untouched without invoking anything."""
    drawn: list[list[str]] = []

    @settings(
        max_examples=1, database=None, phases=[Phase.generate], deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.lists(QUEUE_TEXT.map(lambda t: "~" + t), min_size=count, max_size=count, unique=True))
    def draw(texts: list[str]) -> None:
        drawn.append(texts)

    draw()
    return drawn[0]


async def test_every_poison_message_is_recorded_by_the_timer_whatever_its_text(make_stack) -> None:  # type: ignore[no-untyped-def]
    """Raw text on the send queue (poisoned by the host at once) and raw text and base64 garbage put on
    the poison queue each end recorded verbatim, and the poison queue empty, with the reconcile timer
    every 2 seconds. (A request whose every send failed: tests/e2e/test_send_e2e.py, 503 every time.)"""
    stack = await make_stack(RECONCILE_SCHEDULE="*/2 * * * * *")
    queues = stack.svc.storage.queues
    send_queue = queues.get_queue_client(stack.env["SEND_QUEUE"])
    poison_queue = queues.get_queue_client(stack.env["SEND_QUEUE"] + "-poison")
    raw = draw_texts(12)
    for text in raw:
        await send_queue.send_message(text)
    direct = {(await poison_queue.send_message(text)).id: text.encode() for text in ["~not base64 {", "plain\r\ntext"]}
    garbage = b"\xff\x00\xfe binary"
    direct[(await poison_queue.send_message(base64.b64encode(garbage).decode())).id] = garbage
    table = stack.svc.storage.table(stack.svc.names.dead_letters)

    async def all_recorded() -> bool:
        rows = [r async for r in table.query("PartitionKey eq @pk", {"pk": RAW_PARTITION})]
        return len(rows) == len(raw) + len(direct) and await stack.svc.poison.depth() == 0

    await wait_until(all_recorded, 45, "every poison message to be recorded")
    kept = {r["RowKey"]: verbatim(r) async for r in table.query("PartitionKey eq @pk", {"pk": RAW_PARTITION})}
    assert sorted(kept.values()) == sorted([t.encode() for t in raw] + list(direct.values()))
    assert all(kept[queue_id] == body for queue_id, body in direct.items())
    assert stack.runner is not None
    assert "has no poison queue; leaving it locked" not in stack.runner.logs()
