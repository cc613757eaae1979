"""The per-sender token bucket that keeps sends under the configured ACS limits."""

from shared.services.ratelimit import RateGate


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_beyond_the_bucket_waits_for_tokens() -> None:
    """At 60/min with a 2 s burst, two sends pass at once and the third waits about a second."""
    clock = FakeClock()
    gate = RateGate(lambda sender: 60.0, clock=clock)
    assert [gate.wait_for("+1800") for _ in range(2)] == [0.0, 0.0]
    wait = gate.wait_for("+1800")
    assert 0.9 <= wait <= 1.0
    assert gate.throttled == 1
    clock.now += 1.0
    assert gate.wait_for("+1800") == 0.0


def test_senders_have_their_own_buckets() -> None:
    """One sender's burst does not slow another."""
    gate = RateGate(lambda sender: 60.0, clock=FakeClock())
    for _ in range(2):
        gate.wait_for("a")
    assert gate.wait_for("a") > 0
    assert gate.wait_for("b") == 0.0
