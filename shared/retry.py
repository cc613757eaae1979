"""Backoff for sends that failed for a reason outside the message: exponential, capped, with jitter.

Why here and not in host.json: the queue trigger's only retry is `visibilityTimeout` times `maxDequeueCount`,
a fixed delay, and Functions retry policies are not available for Queue storage triggers ("Retries":
https://learn.microsoft.com/azure/azure-functions/functions-bindings-error-pages). The host's own
settings would need minutes of fixed visibility for every failure, including the ones that are over in
a second. So the send pipeline re-enqueues a failed request itself, with a visibility delay that
doubles per attempt up to a cap, randomised so that a backlog does not retry in lock step (the
Azure Architecture Center's retry guidance: exponential back-off with randomisation,
https://learn.microsoft.com/azure/architecture/best-practices/transient-faults). After `attempts`
retries the failure goes to the host, which retries quickly and then poisons the message.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Retry `n` (1-based) waits between half and all of min(cap, base * 2^(n-1)) seconds."""

    base_seconds: float
    cap_seconds: float
    attempts: int

    def ceiling(self, retry: int) -> float:
        return float(min(self.cap_seconds, self.base_seconds * 2 ** min(max(retry - 1, 0), 30)))

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        ceiling = self.ceiling(retry)
        return (rng or random).uniform(ceiling / 2, ceiling)

    def window(self) -> tuple[float, float]:
        """The shortest and longest total wait before the last retry is spent."""
        total = sum(self.ceiling(n) for n in range(1, self.attempts + 1))
        return total / 2, total


# Outages of ACS, Microsoft Entra ID or the network: retried for about 25 to 50 minutes.
DEFAULT_SEND_RETRY = Backoff(base_seconds=5, cap_seconds=300, attempts=15)
# ACS refuses the app's identity (403): nothing resolves this but a role assignment, which can take
# up to 30 minutes to take effect; held for about 70 to 140 minutes, alerted on from the first one.
FORBIDDEN_RETRY = Backoff(base_seconds=60, cap_seconds=900, attempts=12)
