"""Provider latency profiles for the benchmarks, applied through the ACS emulator's latency faults.

`instant`: the emulator answers at once (what every figure before this profile measured).
`realistic`: each ACS call takes a round trip of its own, and an email operation stays Running for a
while, as the service does. What a sender waits on is modelled; delivery reports are not delayed:
they come when a handset or a mailbox answers, no sender waits for them, and a constant delay would
only move the end of the run by that much for every app alike.

Where each figure comes from (none of these was measured against a live ACS resource from here):
- Email operation time, 20 s: the REST API spec's own example of a send (Azure/azure-rest-api-specs,
  specification/communication/data-plane/Email/stable/2023-03-31/examples/SendEmail.json) answers 202
  with `retry-after: 20`, the service telling the poller when to look again; that the operation runs
  about that long is an assumption drawn from it. The emulator's polls answer `Retry-After: 1`, so a
  poller looks more often than it would in Azure; the time it waits for the result is the same.
- Send round trips (SMS, email send, WhatsApp): ASSUMPTIONS. No Microsoft page gives a latency for
  these calls. The medians stand for a call within one Azure region to a service that validates,
  persists and answers (SMS, email), and one that also relays to Meta's Cloud API before answering
  (WhatsApp, Advanced Messages); one call in twenty takes the tail figure. Replace them with figures
  measured against a real resource when one is at hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class LatencyProfile(StrEnum):
    INSTANT = "instant"
    REALISTIC = "realistic"


@dataclass(frozen=True)
class CallLatency:
    """How long one ACS call of a channel takes: `median_ms`, and `tail_ms` for a `tail_share` of calls."""

    channel: str
    median_ms: int
    tail_ms: int
    tail_share: float


REALISTIC_CALLS = (
    CallLatency("sms", median_ms=250, tail_ms=1000, tail_share=0.05),  # assumption (see above)
    CallLatency("email", median_ms=300, tail_ms=1200, tail_share=0.05),  # assumption; also each status poll
    CallLatency("whatsapp", median_ms=450, tail_ms=1500, tail_share=0.05),  # assumption: ACS, then Meta
)
REALISTIC_EMAIL_OPERATION_S = 20.0  # the spec example's retry-after (see above)


def fault_rules(profile: LatencyProfile) -> list[dict[str, Any]]:
    """The emulator's latency faults for `profile`, in the order to add them: the emulator applies the
    first rule that fires, so each channel's tail rule (fires for `tail_share` of calls) comes before its
    median rule (fires for every call)."""
    if profile is LatencyProfile.INSTANT:
        return []
    rules: list[dict[str, Any]] = []
    for call in REALISTIC_CALLS:
        rules.append({"channel": call.channel, "rate": call.tail_share, "latencyMs": call.tail_ms})
        rules.append({"channel": call.channel, "rate": 1.0, "latencyMs": call.median_ms})
    return rules


def emulator_settings(profile: LatencyProfile) -> dict[str, Any]:
    """Settings for the ACS emulator's constructor under `profile`."""
    if profile is LatencyProfile.INSTANT:
        return {}
    return {"operation_delay": REALISTIC_EMAIL_OPERATION_S}


def describe(profile: LatencyProfile) -> dict[str, Any]:
    """What the results file records about the profile."""
    if profile is LatencyProfile.INSTANT:
        return {"profile": str(profile)}
    return {
        "profile": str(profile),
        "calls_ms": {
            c.channel: {"median": c.median_ms, "tail": c.tail_ms, "tail_share": c.tail_share} for c in REALISTIC_CALLS
        },
        "email_operation_s": REALISTIC_EMAIL_OPERATION_S,
        "sources": "bench/latency.py: the email operation time from the REST spec's example, the round trips assumed",
    }
