"""A token bucket per sender identity, so sends stay under the configured ACS limits.

Why in-process: a 429 costs a round trip and a re-schedule; smoothing bursts locally makes them
rare. The limit is per process (an instance); with N instances configure limit/N, or rely on 429
handling, which never blocks a worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate_per_second: float
    capacity: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take one token; return 0 if granted, else the seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate_per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate_per_second if self.rate_per_second > 0 else 60.0


@dataclass
class RateGate:
    """Buckets keyed by sender; `limit_for(sender)` gives messages per minute."""

    limit_for: Callable[[str], float]
    clock: Callable[[], float] = time.monotonic
    burst_seconds: float = 2.0
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)
    throttled: int = 0

    def wait_for(self, sender: str) -> float:
        """0 if this send may go now, else how long to wait (the token is not taken then)."""
        bucket = self._buckets.get(sender)
        now = self.clock()
        if bucket is None:
            rate = max(self.limit_for(sender), 0.0) / 60.0
            capacity = max(1.0, rate * self.burst_seconds)
            bucket = self._buckets[sender] = TokenBucket(rate, capacity, capacity, now)
        wait = bucket.take(now)
        if wait > 0:
            self.throttled += 1
        return wait
