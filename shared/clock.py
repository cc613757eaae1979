"""The one source of 'now', and the one text form of a moment.

Why one module: services take a `Clock` so that tests and the retention job can inject time, and every
timestamp the app stores is `iso` text (UTC, microseconds, `Z`), which sorts as the moments do.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """A moment as stored: UTC, microseconds, `Z` (so that stored times sort as text)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
