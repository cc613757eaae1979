"""The event projection (`shared.services.events.projection`) as a plain function: a ledger row and a
report in, the row as the report leaves it (or None) out."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import reduce

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.clock import iso
from shared.events_model import AcsEvent, EventKind
from shared.models import Channel, Status
from shared.schema import LedgerRow
from shared.services.events import projection
from shared.status import NEVER_SENT, RANK, REPORTED, SYNTHETIC

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)


def _at(seconds: float) -> str:
    return iso(T0 + timedelta(seconds=seconds))


def report(status: Status | None, seconds: float, provider_id: str = "acs-1", detail: str = "") -> AcsEvent:
    return AcsEvent(
        channel=Channel.WHATSAPP,
        kind=EventKind.REPORT,
        event_type="Microsoft.Communication.AdvancedMessageDeliveryStatusUpdated",
        provider_message_id=provider_id,
        raw_status=status.value if status else "Warning",
        status=status,
        event_time=_at(seconds),
        detail=detail,
    )


def sent_row(provider_id: str | None = "acs-1", sent_at: str | None = None) -> LedgerRow:
    """A row as the sender leaves it: Sent at T0 (or `sent_at`), under `provider_id`."""
    at = sent_at or _at(0)
    row = LedgerRow(message_id="m-1", status=Status.ACCEPTED, channel_name="whatsapp").moved_to(Status.SENT, at)
    return replace(row, provider_message_id=provider_id)


def fold(row: LedgerRow, events: list[AcsEvent]) -> LedgerRow:
    """Apply reports in order, as the event service does one at a time (None: the row stays)."""
    return reduce(lambda current, event: projection(current, event, NOW) or current, events, row)


REPORTS = st.builds(
    report,
    st.sampled_from(sorted(REPORTED)),
    st.integers(-5, 60),  # a report can carry a time before the sender's own record of Sent
)


ONE_PER_STATUS = st.lists(REPORTS, min_size=1, max_size=4, unique_by=lambda event: event.status)


@settings(max_examples=300, deadline=None)
@given(ONE_PER_STATUS.flatmap(lambda events: st.tuples(st.just(events), st.permutations(events))))
def test_any_order_of_the_same_reports_ends_at_the_same_status(orders: tuple[list[AcsEvent], list[AcsEvent]]) -> None:
    """One report per status, in any order (two reports of one status: see the test below)."""
    one, other = orders
    first, second = fold(sent_row(), one), fold(sent_row(), other)
    assert (first.status, first.status_event_time) == (second.status, second.status_event_time)
    assert first.provider_message_id == second.provider_message_id == "acs-1"


def test_two_reports_of_one_status_and_another_end_the_same_in_any_order() -> None:
    delivered_early, delivered_late, failed = (
        report(Status.DELIVERED, 0),
        report(Status.DELIVERED, 10),
        report(Status.FAILED, 5),
    )
    finals = {
        fold(sent_row(), [first, second, third]).status
        for first, second, third in itertools.permutations([delivered_early, delivered_late, failed])
    }
    assert len(finals) == 1, finals


@settings(max_examples=300, deadline=None)
@given(st.lists(REPORTS, max_size=8))
def test_a_status_never_goes_back(events: list[AcsEvent]) -> None:
    row = sent_row()
    for event in events:
        after = projection(row, event, NOW)
        if after is not None:
            assert RANK[after.status] >= RANK[row.status]
            if after.status != row.status:
                assert after.status == event.status and after.status_event_time == event.event_time
                assert after.updated_at == iso(NOW)
            else:  # a later report of the same outcome, or an earlier proof of arrival: only times move
                assert after.status_event_time >= row.status_event_time
            row = after


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(NEVER_SENT)), REPORTS)
def test_a_message_never_sent_ignores_every_report(status: Status, event: AcsEvent) -> None:
    row = LedgerRow(message_id="m-1", status=status, channel_name="whatsapp")
    assert projection(row, event, NOW) is None


@settings(max_examples=200, deadline=None)
@given(REPORTS)
def test_the_same_report_twice_changes_nothing_the_second_time(event: AcsEvent) -> None:
    once = fold(sent_row(), [event])
    assert projection(once, event, NOW) is None


@pytest.mark.parametrize("synthetic", sorted(SYNTHETIC))
def test_a_real_outcome_overrides_a_synthetic_one(synthetic: Status) -> None:
    row = LedgerRow(message_id="m-1", status=synthetic, channel_name="whatsapp")
    after = projection(row, report(Status.DELIVERED, 5), NOW)
    assert after is not None and after.status == Status.DELIVERED


def test_a_bare_sent_settles_unknown_but_not_expired() -> None:
    unknown = LedgerRow(message_id="m-1", status=Status.UNKNOWN, channel_name="whatsapp")
    expired = LedgerRow(message_id="m-1", status=Status.EXPIRED, channel_name="whatsapp")
    settled = projection(unknown, report(Status.SENT, 5), NOW)
    assert settled is not None and settled.status == Status.SENT
    assert projection(expired, report(Status.SENT, 5), NOW) is None


def test_between_delivered_and_failed_the_later_report_wins_and_a_tie_goes_to_failed() -> None:
    assert fold(sent_row(), [report(Status.FAILED, 9), report(Status.DELIVERED, 10)]).status == Status.DELIVERED
    assert fold(sent_row(), [report(Status.DELIVERED, 10), report(Status.FAILED, 9)]).status == Status.DELIVERED
    assert fold(sent_row(), [report(Status.DELIVERED, 10), report(Status.FAILED, 10)]).status == Status.FAILED
    assert fold(sent_row(), [report(Status.FAILED, 10), report(Status.DELIVERED, 10)]).status == Status.FAILED


def test_latency_is_measured_once_from_sent_to_the_first_arrival() -> None:
    delivered = projection(sent_row(), report(Status.DELIVERED, 2.5), NOW)
    assert delivered is not None and delivered.delivery_latency_ms == 2500.0
    read = projection(delivered, report(Status.READ, 30), NOW)
    assert read is not None and read.status == Status.READ
    assert read.delivery_latency_ms == 2500.0


def test_latency_is_never_negative_and_not_measured_without_a_send_time() -> None:
    early = projection(sent_row(), report(Status.DELIVERED, -3), NOW)
    assert early is not None and early.delivery_latency_ms == 0.0
    unsent = LedgerRow(message_id="m-1", status=Status.SENDING, channel_name="whatsapp")
    reached = projection(unsent, report(Status.DELIVERED, 3), NOW)
    assert reached is not None and reached.delivery_latency_ms is None


def test_a_failed_report_measures_no_latency() -> None:
    failed = projection(sent_row(), report(Status.FAILED, 3), NOW)
    assert failed is not None and failed.delivery_latency_ms is None


def test_latency_does_not_depend_on_report_order() -> None:
    in_order = fold(sent_row(), [report(Status.DELIVERED, 2), report(Status.READ, 40)])
    reversed_ = fold(sent_row(), [report(Status.READ, 40), report(Status.DELIVERED, 2)])
    assert in_order.delivery_latency_ms == reversed_.delivery_latency_ms


def test_the_provider_id_is_filled_only_when_the_row_has_none() -> None:
    filled = projection(sent_row(provider_id=None), report(Status.DELIVERED, 3, provider_id="acs-9"), NOW)
    assert filled is not None and filled.provider_message_id == "acs-9"
    kept = projection(sent_row(provider_id="acs-1"), report(Status.DELIVERED, 3, provider_id="acs-9"), NOW)
    assert kept is not None and kept.provider_message_id == "acs-1"


def test_a_report_without_a_status_changes_nothing() -> None:
    assert projection(sent_row(), report(None, 3), NOW) is None


def test_the_reason_is_the_winning_reports_detail_or_stays() -> None:
    failed = projection(sent_row(), report(Status.FAILED, 3, detail="Undeliverable"), NOW)
    assert failed is not None and failed.reason == "Undeliverable"
    row = replace(sent_row(), reason="earlier")
    delivered = projection(row, report(Status.DELIVERED, 3), NOW)
    assert delivered is not None and delivered.reason == "earlier"
