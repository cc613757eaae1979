"""What became of one delivery of a send request (the queue trigger logs it; tests assert it)."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    SENT = "sent"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"
    FAILED = "failed"
    UNKNOWN = "unknown"
    RESCHEDULED = "rescheduled"
    ID_REUSED = "id-reused"
