"""A generated corpus of bad input through the runner: recorded with a reason, never retried, no crash."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from shared.ids import content_id
from shared.models import Status
from tests.e2e.conftest import all_final, wait_until

_wrong_types = st.fixed_dictionaries(
    {
        "channel": st.sampled_from(["sms", "email", "whatsapp"]),
        "to": st.one_of(st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2)),
        "content": st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2)),
    }
)
_bad_numbers = st.builds(
    lambda n: {"channel": "sms", "to": n, "content": {"text": "x"}},
    st.text(alphabet="0123456789-() +", min_size=1, max_size=14).filter(lambda s: not s.startswith("+1")),
)
_bad_addresses = st.builds(
    lambda a: {"channel": "email", "to": a, "content": {"subject": "s", "text": "t"}},
    st.text(alphabet="abc@.-_ ", min_size=1, max_size=12),
)
_unknown = st.one_of(
    st.builds(
        lambda c: {"channel": c, "to": "+14255550100", "content": {"text": "x"}},
        st.text(min_size=1, max_size=8).filter(lambda c: c not in {"sms", "email", "whatsapp"}),
    ),
    st.builds(
        lambda s: {"channel": "sms", "to": "+14255550100", "from": s, "content": {"text": "x"}},
        st.sampled_from(["+19995550100", "someone", "+18005550199"]),
    ),
)
_huge = st.builds(
    lambda n: {"channel": "sms", "to": "+14255550100", "content": {"text": "ж" * n}},
    st.integers(min_value=2_000, max_value=20_000),
)
_invalid_json = st.text(min_size=1, max_size=40).filter(lambda t: not _is_json(t))
BAD = st.one_of(_wrong_types, _bad_numbers, _bad_addresses, _unknown, _huge).map(json.dumps) | _invalid_json


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def generate_corpus(size: int) -> list[str]:
    """Draw one corpus of `size` bad bodies with hypothesis (one example of a list strategy)."""
    drawn: list[list[str]] = []

    @settings(
        max_examples=1, database=None, phases=[Phase.generate], deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.lists(BAD, min_size=size, max_size=size, unique=True))
    def draw(corpus: list[str]) -> None:
        drawn.append(corpus)

    draw()
    return drawn[0]


def _expected_id(key: bytes, body: str) -> str:
    try:
        data: Any = json.loads(body)
    except ValueError:
        return content_id(key, body.encode())
    if isinstance(data, dict) and isinstance(data.get("id"), str):
        return str(data["id"])
    return content_id(key, body.encode())


async def test_bad_input_is_rejected_or_dead_lettered_never_retried(make_stack) -> None:  # type: ignore[no-untyped-def]
    """Every generated bad body ends Rejected with field errors; plain text goes to poison at once."""
    stack = await make_stack()
    corpus = generate_corpus(40)
    for body in corpus:
        await stack.svc.outbound.send(body)
    raw_plain = ["plain text, not base64 !!", "{not even json"]
    for text in raw_plain:
        await stack.svc.storage.queues.get_queue_client(stack.env["SEND_QUEUE"]).send_message(text)
    ids = sorted({_expected_id(stack.env["CONSENT_HASH_KEY"].encode(), body) for body in corpus})
    rejected = frozenset({Status.REJECTED})
    await wait_until(lambda: all_final(stack, ids, rejected), 60, "every bad body to be recorded as Rejected")
    for message_id in ids:
        row = await stack.svc.ledger.get(message_id)
        assert row is not None and json.loads(row.get("Errors")) and row.attempts == 0

    async def poisoned() -> bool:
        return await stack.svc.poison.depth() == len(raw_plain)

    await wait_until(poisoned, 20, "plain text to be moved to the poison queue")
    assert stack.runner is not None and stack.runner.running
    log = stack.runner.logs()
    assert "Executed 'Functions.send_message' (Failed" not in log
    assert log.count("is not valid base64; moving it to the poison queue") == len(raw_plain)
    assert stack.acs.sends() == []
