""".NET TimeSpan parsing for host.json values.

Why: host.json durations (`maxPollingInterval`, `functionTimeout`, retry intervals) are bound by .NET's
configuration binder, which parses them as TimeSpan strings. A bare number means *days* there, not
milliseconds, and we must read them the same way or a copied host.json behaves differently here.
"""

from __future__ import annotations

import re
from datetime import timedelta

# [-][d.]hh:mm[:ss[.fffffff]]  or  [-]d   (TimeSpan's invariant "c" format plus the bare-days form)
_PATTERN = re.compile(r"^(?P<sign>-)?(?:(?P<days>\d+)\.)?(?P<h>\d+):(?P<m>\d+)(?::(?P<s>\d+)(?:\.(?P<f>\d{1,7}))?)?$")
_DAYS_ONLY = re.compile(r"^(?P<sign>-)?(?P<days>\d+)$")


class TimeSpanError(ValueError):
    """A value is not a valid .NET TimeSpan string."""


def parse_timespan(value: object) -> timedelta:
    """Parse a TimeSpan the way .NET configuration binding does (`"2000"` is 2000 days)."""
    text = str(value).strip()
    days_only = _DAYS_ONLY.match(text)
    if days_only:
        return _signed(days_only["sign"], timedelta(days=int(days_only["days"])))
    match = _PATTERN.match(text)
    if match is None:
        raise TimeSpanError(f"'{value}' is not a valid TimeSpan (expected [d.]hh:mm:ss[.fffffff])")
    hours, minutes, seconds = int(match["h"]), int(match["m"]), int(match["s"] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise TimeSpanError(f"'{value}' is not a valid TimeSpan (a component is out of range)")
    fraction = (match["f"] or "0").ljust(7, "0")
    span = timedelta(
        days=int(match["days"] or 0),
        hours=hours,
        minutes=minutes,
        seconds=seconds,
        microseconds=int(fraction) // 10,
    )
    return _signed(match["sign"], span)


def _signed(sign: str | None, span: timedelta) -> timedelta:
    return -span if sign else span


def parse_hms(value: str) -> timedelta:
    """Parse `HH:MM:SS` like the Python worker does for `@app.retry` intervals (whole seconds, < 24 h)."""
    parts = value.strip().split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise TimeSpanError(f"'{value}' is not a valid retry interval (expected HH:MM:SS)")
    hours, minutes, seconds = (int(p) for p in parts)
    if hours > 23 or minutes > 59 or seconds > 61:
        raise TimeSpanError(f"'{value}' is not a valid retry interval (a component is out of range)")
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)
