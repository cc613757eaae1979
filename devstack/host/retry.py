"""Retry policies (`@app.retry` and host.json `retry`) and the delays between attempts.

Why: the host runs a retry policy in memory around *every* invocation of a function that has one
(timer, and today still queue and Event Grid, with a warning), so a runner that ignored it would
report fewer attempts than Azure makes. Function-level policies win over the host-level one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from devstack.host.backoff import RandomizedExponentialBackoff
from devstack.host.timespan import parse_hms, parse_timespan

FOREVER = -1


@dataclass(frozen=True)
class RetryPolicy:
    """Up to `max_retry_count` retries after the first failure (-1 = forever)."""

    max_retry_count: int
    fixed_delay: timedelta | None = None
    minimum_interval: timedelta = timedelta(0)
    maximum_interval: timedelta = timedelta(0)

    def allows(self, retries_done: int) -> bool:
        """True when another retry may follow `retries_done` retries."""
        return self.max_retry_count == FOREVER or retries_done < self.max_retry_count

    def delays(self) -> RetryDelays:
        """A fresh delay sequence for one invocation's retries."""
        return RetryDelays(self)


class RetryDelays:
    """Fixed delay, or the host's randomized exponential backoff between min and max."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._backoff = (
            None
            if policy.fixed_delay is not None
            else RandomizedExponentialBackoff(policy.minimum_interval, policy.maximum_interval)
        )

    def next(self) -> timedelta:
        if self._backoff is None:
            assert self._policy.fixed_delay is not None
            return self._policy.fixed_delay
        return self._backoff.next_delay(succeeded=False)


def from_decorator(settings: Mapping[str, Any]) -> RetryPolicy:
    """`@app.retry(...)` settings, converted as the Python worker does (`loader.build_retry_protos`)."""
    max_retry_count = int(settings["max_retry_count"])
    if settings.get("strategy") == "fixed_delay":
        return RetryPolicy(max_retry_count, fixed_delay=parse_hms(str(settings["delay_interval"])))
    return RetryPolicy(
        max_retry_count,
        minimum_interval=parse_hms(str(settings["minimum_interval"])),
        maximum_interval=parse_hms(str(settings["maximum_interval"])),
    )


def from_host_json(section: Mapping[str, Any]) -> RetryPolicy:
    """host.json `retry` section (keys are case-insensitive, values are TimeSpans)."""
    values = {key.lower(): value for key, value in section.items()}
    strategy = str(values.get("strategy", "")).lower()
    max_retry_count = int(values["maxretrycount"])
    if strategy == "fixeddelay":
        return RetryPolicy(max_retry_count, fixed_delay=parse_timespan(values["delayinterval"]))
    if strategy == "exponentialbackoff":
        return RetryPolicy(
            max_retry_count,
            minimum_interval=parse_timespan(values["minimuminterval"]),
            maximum_interval=parse_timespan(values["maximuminterval"]),
        )
    raise ValueError(f"host.json retry strategy '{values.get('strategy')}' is not fixedDelay or exponentialBackoff")
