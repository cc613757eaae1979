"""The randomized exponential backoff the WebJobs SDK uses for queue polling and retry delays.

Why a port rather than a generic backoff: the exact sequence (100 ms, ~200 ms, ~320 ms ... up to
`maxPollingInterval`, reset after a poll that found messages) decides how quickly a retried message
comes back and how much an idle runner polls; tests and benchmarks should see what Azure shows.
Source: `RandomizedExponentialBackoffStrategy.cs` in the Storage extension.
"""

from __future__ import annotations

import random
from datetime import timedelta

RANDOMIZATION_FACTOR = 0.2


class RandomizedExponentialBackoff:
    """Delay = min + rand(0.8..1.2) x 2^(n-1) x delta, growing until it would pass max, then max."""

    def __init__(self, minimum: timedelta, maximum: timedelta, delta: timedelta | None = None) -> None:
        if minimum > maximum:
            raise ValueError("the minimum interval must not exceed the maximum interval")
        self._minimum = minimum
        self._maximum = maximum
        self._delta = delta if delta is not None else minimum
        self._current = minimum
        self._exponent = 0

    def next_delay(self, succeeded: bool) -> timedelta:
        """Return the next wait: reset after success, otherwise grow (the host's GetNextDelay)."""
        if succeeded:
            self._current = self._minimum
            self._exponent = 1
            return self._current
        if self._current == self._maximum:
            return self._current
        candidate = self._minimum
        if self._exponent > 0:
            factor = random.uniform(1.0 - RANDOMIZATION_FACTOR, 1.0 + RANDOMIZATION_FACTOR)
            candidate += self._delta * (factor * 2.0 ** (self._exponent - 1))
        if candidate < self._maximum:
            self._current = candidate
            self._exponent += 1
        else:
            self._current = self._maximum
        return self._current
