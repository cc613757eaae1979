"""The monotonic status projection (design §3).

Each status has a rank; a lower rank never overwrites a higher one. Terminal states are locked,
except the documented overrides: a real provider report overrides the synthetic `Expired`,
`Unknown` and `DeadLettered`, and `Read` follows `Delivered`. Between the two delivery outcomes of
equal rank, the later event time wins (ties go to Failed), so event order never changes the answer.
"""

from __future__ import annotations

from shared.models import Status

RANK: dict[Status, int] = {
    Status.ACCEPTED: 10,
    Status.SENDING: 20,
    Status.SENT: 30,
    Status.UNKNOWN: 35,
    Status.EXPIRED: 40,
    Status.DEAD_LETTERED: 45,
    Status.DELIVERED: 60,
    Status.FAILED: 60,
    Status.READ: 70,
    Status.REJECTED: 90,
    Status.SUPPRESSED: 90,
}

TERMINAL = frozenset(
    {
        Status.DELIVERED,
        Status.READ,
        Status.FAILED,
        Status.EXPIRED,
        Status.REJECTED,
        Status.SUPPRESSED,
        Status.DEAD_LETTERED,
        Status.UNKNOWN,
    }
)
# Outcomes the pipeline decided for itself; a real report from the provider may override them.
SYNTHETIC = frozenset({Status.EXPIRED, Status.UNKNOWN, Status.DEAD_LETTERED})
NEVER_SENT = frozenset({Status.REJECTED, Status.SUPPRESSED})
REPORTED = frozenset({Status.SENT, Status.DELIVERED, Status.FAILED, Status.READ})
OUTCOMES = frozenset({Status.DELIVERED, Status.FAILED, Status.READ})
# Statuses of equal rank, between which the later report wins: a row in one of them keeps the time of
# its latest report of that status, so the comparison does not depend on the order reports came in.
TIME_RANKED = frozenset({Status.DELIVERED, Status.FAILED})


def report_wins(current: Status, current_time: str, new: Status, new_time: str) -> bool:
    """Should a provider report of `new` at `new_time` replace `current` (set at `current_time`)?"""
    if current in NEVER_SENT or new not in REPORTED:
        return False
    if current in SYNTHETIC:
        # A delivery outcome always beats a guess; a bare Sent only proves a send happened, which
        # settles Unknown and DeadLettered but says nothing new about an expired message.
        return new in OUTCOMES or current in {Status.UNKNOWN, Status.DEAD_LETTERED}
    if RANK[new] != RANK[current]:
        return RANK[new] > RANK[current]
    if new == current:
        return False
    # Delivered vs Failed: the later report wins; at the same instant Failed wins.
    if new_time != current_time:
        return new_time > current_time
    return new == Status.FAILED


def pipeline_may_set(current: Status, new: Status) -> bool:
    """May the send pipeline move a row from `current` to `new`? (Reports use `report_wins`.)"""
    if current in TERMINAL:
        return False
    if new == Status.ACCEPTED:  # throttled: give the claim back
        return current == Status.SENDING
    return RANK[new] > RANK[current]
