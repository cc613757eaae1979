"""`--provider-latency`: the emulator's latency faults and settings each profile sets up.

The rules are drawn through the emulator's own fault book with a seeded generator, so the shares are
checked without timing anything.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from bench.latency import REALISTIC_CALLS, LatencyProfile, describe, emulator_settings, fault_rules
from devstack.acs.faults import FaultBook, FaultKind
from devstack.acs.models import Channel


def test_the_instant_profile_adds_nothing() -> None:
    assert fault_rules(LatencyProfile.INSTANT) == []
    assert emulator_settings(LatencyProfile.INSTANT) == {}
    assert describe(LatencyProfile.INSTANT) == {"profile": "instant"}


def test_every_call_of_every_channel_is_slowed_with_a_tail_of_the_given_share() -> None:
    book = FaultBook(random.Random(7))
    for rule in fault_rules(LatencyProfile.REALISTIC):
        book.add({"kind": "latency", **rule})
    for call in REALISTIC_CALLS:
        drawn = [book.take(Channel(call.channel)) for _ in range(4000)]
        assert all(fault is not None and fault.kind is FaultKind.LATENCY for fault in drawn)
        counts = Counter(fault.latency_ms for fault in drawn if fault is not None)
        assert set(counts) == {call.median_ms, call.tail_ms}
        assert abs(counts[call.tail_ms] / 4000 - call.tail_share) < 0.02
    assert len(book.active()) == 2 * len(REALISTIC_CALLS)  # rate rules never run out


def test_the_realistic_profile_keeps_email_operations_running_and_says_where_its_figures_come_from() -> None:
    assert emulator_settings(LatencyProfile.REALISTIC)["operation_delay"] > 0
    described = describe(LatencyProfile.REALISTIC)
    assert set(described["calls_ms"]) == {"sms", "email", "whatsapp"}
    assert "bench/latency.py" in described["sources"]
    source = (Path(__file__).resolve().parents[2] / "bench" / "latency.py").read_text()
    assert "SendEmail.json" in source and "ASSUMPTIONS" in source
