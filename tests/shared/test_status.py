"""The monotonic status projection: order and duplicates never change the final answer."""

import itertools

from shared.models import Status
from shared.status import pipeline_may_set, report_wins


def _fold(start: Status, reports: list[tuple[Status, str]]) -> Status:
    status, at = start, ""
    for new, when in reports:
        if report_wins(status, at, new, when):
            status, at = new, when
    return status


def test_any_order_of_reports_gives_the_same_final_status() -> None:
    """Every permutation of a WhatsApp Sent/Delivered/Read sequence ends Read."""
    reports = [(Status.SENT, "t1"), (Status.DELIVERED, "t2"), (Status.READ, "t3")]
    finals = {_fold(Status.SENDING, list(p)) for p in itertools.permutations(reports)}
    assert finals == {Status.READ}


def test_conflicting_outcomes_resolve_by_event_time_not_arrival() -> None:
    """Delivered and Failed at different times: the later one wins whichever arrives first."""
    reports = [(Status.FAILED, "2026-01-01T00:00:01Z"), (Status.DELIVERED, "2026-01-01T00:00:02Z")]
    assert _fold(Status.SENT, reports) == _fold(Status.SENT, reports[::-1]) == Status.DELIVERED


def test_a_real_report_overrides_a_synthetic_expiry() -> None:
    """A late Delivered report replaces Expired, Unknown and DeadLettered."""
    for synthetic in (Status.EXPIRED, Status.UNKNOWN, Status.DEAD_LETTERED):
        assert report_wins(synthetic, "t", Status.DELIVERED, "t0")


def test_reports_never_touch_messages_that_were_never_sent() -> None:
    """Suppressed and Rejected rows stay as they are."""
    assert not report_wins(Status.SUPPRESSED, "", Status.DELIVERED, "t")
    assert not report_wins(Status.REJECTED, "", Status.READ, "t")


def test_the_pipeline_cannot_move_a_terminal_row() -> None:
    """Once Delivered, a late pipeline Sent or Failed changes nothing."""
    assert not pipeline_may_set(Status.DELIVERED, Status.SENT)
    assert not pipeline_may_set(Status.SUPPRESSED, Status.FAILED)
    assert pipeline_may_set(Status.SENDING, Status.ACCEPTED)
    assert not pipeline_may_set(Status.ACCEPTED, Status.ACCEPTED)


def test_a_bare_sent_report_does_not_revive_an_expired_message() -> None:
    """Sent after Expired changes nothing; Sent after Unknown proves the send happened."""
    assert not report_wins(Status.EXPIRED, "t1", Status.SENT, "t0")
    assert report_wins(Status.UNKNOWN, "t1", Status.SENT, "t0")
