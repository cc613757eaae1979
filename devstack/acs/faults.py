"""Injected faults: throttling, server errors, latency and dropped connections on demand.

Why: the app must survive 429 with Retry-After, 5xx, slow responses and lost responses without
blocking a worker or sending twice. A fault applies to the next N ACS requests, for S seconds, or
at random with probability `rate` (these can be combined), optionally for one channel only.
"""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from devstack.acs.models import Channel


class FaultKind(StrEnum):
    """What the emulator does instead of (or before) serving the request."""

    THROTTLE = "429"
    SERVER_ERROR = "500"
    UNAVAILABLE = "503"
    LATENCY = "latency"
    DROP = "drop"


class DropPhase(StrEnum):
    """When a fault strikes: before the send is processed, or after it (for `drop`: the response is lost,
    the send is not; for `latency`: the send and its events happen at once, only the response is slow)."""

    BEFORE = "before"
    AFTER = "after"


class FaultError(ValueError):
    """An admin fault request that cannot be understood."""


@dataclass(frozen=True)
class Fault:
    """One active fault rule. `remaining` counts down for count-limited rules."""

    fault_id: int
    kind: FaultKind
    channel: Channel | None = None
    remaining: int | None = None
    until: float | None = None
    rate: float | None = None
    retry_after: int | None = 1  # None: a 429/503 without Retry-After
    latency_ms: int = 200
    phase: DropPhase = DropPhase.BEFORE

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.fault_id,
            "kind": str(self.kind),
            "channel": str(self.channel) if self.channel else None,
            "remaining": self.remaining,
            "secondsLeft": None if self.until is None else max(0.0, round(self.until - time.monotonic(), 3)),
            "rate": self.rate,
            "retryAfter": self.retry_after,
            "latencyMs": self.latency_ms,
            "phase": str(self.phase),
        }


def parse_fault(fault_id: int, body: dict[str, Any]) -> Fault:
    """Build a rule from the admin JSON (`kind`, `count` | `seconds` | `rate`, `channel`, …)."""
    try:
        kind = FaultKind(str(body["kind"]))
        channel = Channel(body["channel"]) if body.get("channel") else None
        count = body.get("count")
        seconds = body.get("seconds")
        rate = body.get("rate")
        if count is None and seconds is None and rate is None:
            count = 1  # an unqualified fault means "the next request"
        return Fault(
            fault_id=fault_id,
            kind=kind,
            channel=channel,
            remaining=None if count is None else int(count),
            until=None if seconds is None else time.monotonic() + float(seconds),
            rate=None if rate is None else float(rate),
            retry_after=_retry_after(body),
            latency_ms=int(body.get("latencyMs", 200)),
            phase=DropPhase(str(body.get("phase", "before"))),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FaultError(f"invalid fault: {exc}") from exc


def _retry_after(body: dict[str, Any]) -> int | None:
    """Seconds for the Retry-After header (default 1); an explicit null sends none."""
    if "retryAfter" in body and body["retryAfter"] is None:
        return None
    return int(body.get("retryAfter", 1))


class FaultBook:
    """The active rules, consulted once per ACS request. Lives on the emulator's event loop only."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rules: list[Fault] = []
        self._ids = itertools.count(1)
        self._rng = rng or random.Random()

    def add(self, body: dict[str, Any]) -> Fault:
        fault = parse_fault(next(self._ids), body)
        self._rules.append(fault)
        return fault

    def clear(self) -> None:
        self._rules.clear()

    def active(self) -> list[Fault]:
        self._expire()
        return list(self._rules)

    def take(self, channel: Channel) -> Fault | None:
        """The first rule that fires for this request; count-limited rules are used up as they fire."""
        self._expire()
        for index, rule in enumerate(self._rules):
            if rule.channel not in (None, channel):
                continue
            if rule.rate is not None and self._rng.random() >= rule.rate:
                continue
            if rule.remaining is not None:
                self._rules[index] = replace(rule, remaining=rule.remaining - 1)
            self._expire()
            return rule
        return None

    def _expire(self) -> None:
        now = time.monotonic()
        self._rules = [
            rule
            for rule in self._rules
            if (rule.remaining is None or rule.remaining > 0) and (rule.until is None or rule.until > now)
        ]
