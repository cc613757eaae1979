"""An NCRONTAB evaluator (the NCrontab library the timer trigger uses), 6 fields or 5.

Why our own: cronsim and croniter speak Vixie cron (5 fields, day-of-month OR day-of-week), while
the host uses NCrontab: an optional leading seconds field, and day-of-month AND day-of-week must both
match. Parsing follows `CrontabFieldImpl.InternalParse` (lists, `*`, `a-b`, `/step`, `n/step` meaning
n..max, names by case-insensitive prefix, reversed ranges swapped); `next_after` is strictly after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_MONTHS = ("January February March April May June July August September October November December").split()  # noqa: SIM905 - the list literal is longer than the sentence
_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
# Enough to find Feb 29 on a given weekday (the 28-year cycle) and stop on impossible dates.
_SEARCH_LIMIT = timedelta(days=366 * 30)


class CrontabError(ValueError):
    """The expression is not valid NCRONTAB."""


@dataclass(frozen=True)
class _FieldKind:
    name: str
    minimum: int
    maximum: int
    names: tuple[str, ...] = ()


_SECOND = _FieldKind("Second", 0, 59)
_MINUTE = _FieldKind("Minute", 0, 59)
_HOUR = _FieldKind("Hour", 0, 23)
_DAY = _FieldKind("Day", 1, 31)
_MONTH = _FieldKind("Month", 1, 12, tuple(_MONTHS))
_DAY_OF_WEEK = _FieldKind("DayOfWeek", 0, 6, tuple(_DAYS))
_KINDS = (_SECOND, _MINUTE, _HOUR, _DAY, _MONTH, _DAY_OF_WEEK)


@dataclass(frozen=True)
class CrontabSchedule:
    """A parsed schedule; `seconds` is {0} for a 5-field expression."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]

    @property
    def has_seconds(self) -> bool:
        return len(self.expression.split()) == 6

    def matches(self, moment: datetime) -> bool:
        return (
            moment.month in self.months
            and moment.day in self.days
            and (moment.isoweekday() % 7) in self.days_of_week
            and moment.hour in self.hours
            and moment.minute in self.minutes
            and moment.second in self.seconds
        )

    def next_after(self, moment: datetime) -> datetime | None:
        """The first occurrence strictly after `moment` (wall-clock, tz kept), or None if never."""
        candidate = moment.replace(microsecond=0) + timedelta(seconds=1)
        limit = moment + _SEARCH_LIMIT
        while candidate <= limit:
            step = self._skip(candidate)
            if step is None:
                return candidate
            candidate = step
        return None

    def _skip(self, t: datetime) -> datetime | None:
        """None when `t` matches, else the earliest instant that could match next."""
        if t.month not in self.months:
            return (t.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0)
        if t.day not in self.days or (t.isoweekday() % 7) not in self.days_of_week:
            return (t + timedelta(days=1)).replace(hour=0, minute=0, second=0)
        if t.hour not in self.hours:
            return (t + timedelta(hours=1)).replace(minute=0, second=0)
        if t.minute not in self.minutes:
            return (t + timedelta(minutes=1)).replace(second=0)
        if t.second not in self.seconds:
            return t + timedelta(seconds=1)
        return None


def parse(expression: str) -> CrontabSchedule:
    """Parse 6 fields (seconds first) or 5 (seconds = 0), as `CronSchedule.TryCreate` does."""
    tokens = expression.split()
    if len(tokens) not in (5, 6):
        raise CrontabError(f"'{expression}' is an invalid crontab expression: it must have 5 or 6 fields")
    kinds = _KINDS if len(tokens) == 6 else _KINDS[1:]
    fields = [_parse_field(kind, token) for kind, token in zip(kinds, tokens, strict=True)]
    if len(tokens) == 5:
        fields.insert(0, frozenset({0}))
    return CrontabSchedule(expression, *fields)


def _parse_field(kind: _FieldKind, text: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        try:
            values |= _parse_part(kind, part)
        except ValueError as exc:
            raise CrontabError(f"'{text}' is not a valid [{kind.name}] crontab field expression: {exc}") from exc
    return frozenset(values)


def _parse_part(kind: _FieldKind, text: str) -> set[int]:
    step: int | None = None
    if "/" in text:
        text, _, step_text = text.partition("/")
        step = max(int(step_text), 1)
    every = step or 1
    if text == "*":
        return set(range(kind.minimum, kind.maximum + 1, every))
    dash = text.find("-")
    if dash > 0:
        first, last = sorted((_value(kind, text[:dash]), _value(kind, text[dash + 1 :])))
        _check_range(kind, first, last)
        return set(range(first, last + 1, every))
    value = _value(kind, text)
    _check_range(kind, value, value)
    # NCrontab reads "n/step" as n..max stepping by `step`.
    return set(range(value, kind.maximum + 1, every)) if step is not None else {value}


def _value(kind: _FieldKind, text: str) -> int:
    if not text:
        raise ValueError("a crontab field value cannot be empty")
    if text[0].isdigit():
        return int(text)
    for index, name in enumerate(kind.names):
        if name.lower().startswith(text.lower()):
            return index + kind.minimum
    raise ValueError(f"'{text}' is not a valid value name")


def _check_range(kind: _FieldKind, first: int, last: int) -> None:
    if first < kind.minimum or last > kind.maximum:
        raise ValueError(f"values must be between {kind.minimum} and {kind.maximum}")


def fires_more_than_once_a_minute(schedule: CrontabSchedule, now: datetime) -> bool:
    """The timer extension's rule for switching `useMonitor` off (`TimerSchedule.Create`)."""
    every_minute = all(
        len(field) == kind.maximum - kind.minimum + 1
        for field, kind in zip(
            (schedule.minutes, schedule.hours, schedule.days, schedule.months, schedule.days_of_week),
            _KINDS[1:],
            strict=True,
        )
    )
    if not every_minute:
        return False
    first = schedule.next_after(now)
    second = schedule.next_after(first) if first else None
    return second is not None and first is not None and second - now < timedelta(minutes=1)
