"""The send backoff: exponential, capped, jittered, and long enough to outlast an outage of minutes."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.retry import DEFAULT_SEND_RETRY, FORBIDDEN_RETRY, Backoff

backoffs = st.builds(
    lambda base, factor, attempts: Backoff(base, base * factor, attempts),
    st.floats(0.1, 120),
    st.floats(1, 100),
    st.integers(1, 40),
)


@settings(max_examples=200, deadline=None)
@given(backoffs, st.integers(1, 60), st.integers(0, 2**32))
def test_each_delay_lies_between_half_and_all_of_its_capped_exponential_ceiling(
    backoff: Backoff, retry: int, seed: int
) -> None:
    """Retry n waits between half and all of min(cap, base * 2^(n-1)), never more than the cap."""
    ceiling = min(backoff.cap_seconds, backoff.base_seconds * 2 ** (retry - 1))
    delay = backoff.delay(retry, random.Random(seed))
    assert ceiling / 2 <= delay <= ceiling <= backoff.cap_seconds


@settings(max_examples=100, deadline=None)
@given(backoffs)
def test_ceilings_never_shrink(backoff: Backoff) -> None:
    """Later retries never wait less (before jitter) than earlier ones."""
    ceilings = [backoff.ceiling(n) for n in range(1, backoff.attempts + 2)]
    assert ceilings == sorted(ceilings)


def test_a_backlog_retries_spread_out_not_in_lock_step() -> None:
    """200 messages failing together do not come back at the same second."""
    rng = random.Random(1)
    delays = {round(DEFAULT_SEND_RETRY.delay(4, rng)) for _ in range(200)}
    assert len(delays) >= 15


def test_the_default_budgets_outlast_outages_of_minutes() -> None:
    """Even with the shortest jitter, transient failures are retried for over 20 minutes and a 403 for over
    an hour (a role assignment can take 30 minutes to take effect)."""
    assert DEFAULT_SEND_RETRY.window()[0] > 20 * 60
    assert FORBIDDEN_RETRY.window()[0] > 60 * 60
