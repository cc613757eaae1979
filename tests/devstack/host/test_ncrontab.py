"""NCRONTAB parsing and next occurrences, as the NCrontab library computes them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devstack.host.ncrontab import CrontabError, fires_more_than_once_a_minute, parse


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/5 * * * * *", "2024-05-01T12:00:03", "2024-05-01T12:00:05"),
        ("0 */5 * * * *", "2024-05-01T12:00:00", "2024-05-01T12:05:00"),
        ("0 30 9 * * 1-5", "2024-05-03T10:00:00", "2024-05-06T09:30:00"),  # Friday -> Monday
        ("5/20 * * * * *", "2024-05-01T12:00:06", "2024-05-01T12:00:25"),
        ("0 0 12 * JAN,Jul Sun", "2024-05-01T00:00:00", "2024-07-07T12:00:00"),
        ("0 0 17-9 * * *", "2024-05-01T10:00:00", "2024-05-01T11:00:00"),  # reversed range is swapped
    ],
)
def test_six_field_expressions_give_the_next_occurrence(expression: str, after: str, expected: str) -> None:
    """Six-field expressions (seconds first) produce NCrontab's next occurrence, strictly after the base."""
    assert parse(expression).next_after(at(after)) == at(expected)


def test_five_field_expression_fires_at_second_zero() -> None:
    """A five-field expression has no seconds field and fires at :00."""
    assert parse("*/15 * * * *").next_after(at("2024-05-01T12:07:30")) == at("2024-05-01T12:15:00")


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    """NCrontab ANDs day-of-month and day-of-week (Vixie cron would OR them): next Friday the 13th."""
    assert parse("0 0 0 13 * Fri").next_after(at("2024-01-01T00:00:00")) == at("2024-09-13T00:00:00")


def test_occurrence_is_strictly_after_the_base_time() -> None:
    """A base time that is itself an occurrence is not returned."""
    assert parse("0 0 * * * *").next_after(at("2024-05-01T12:00:00")) == at("2024-05-01T13:00:00")


def test_impossible_date_never_fires() -> None:
    """February 30th has no occurrence."""
    assert parse("0 0 0 30 2 *").next_after(at("2024-01-01T00:00:00")) is None


@pytest.mark.parametrize(
    "expression", ["* * * *", "* * * * * * *", "60 * * * * *", "0 0 0 * * 7", "0 0 0 * Foo *", "0 0 0 1-x * *"]
)
def test_invalid_expressions_are_rejected(expression: str) -> None:
    """Wrong field counts, out-of-range values and unknown names raise CrontabError."""
    with pytest.raises(CrontabError):
        parse(expression)


def test_every_second_schedule_counts_as_more_than_once_a_minute() -> None:
    """The rule that switches useMonitor off holds for an every-second schedule only."""
    now = at("2024-05-01T12:00:00")
    assert (
        fires_more_than_once_a_minute(parse("*/1 * * * * *"), now),
        fires_more_than_once_a_minute(parse("0 * * * * *"), now),
    ) == (True, False)
