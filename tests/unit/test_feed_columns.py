"""A ledger row's feed events ride in its columns (`shared.schema.FEED_COLUMNS`); a reader looks them up
by name up to the row's FeedSequence, so the round trip must keep exactly the inline ones, whatever gaps
(events stored as rows of their own) and whatever other columns the entity holds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.models import Status
from shared.schema import FEED_COLUMNS, LedgerRow, OutboxRow, feed_column, feed_events_of

SEQUENCES = st.integers(min_value=1, max_value=FEED_COLUMNS + 10)


@given(last=SEQUENCES, data=st.data())
def test_inline_events_survive_the_round_trip_and_nothing_else_reads_as_one(last: int, data: st.DataObject) -> None:
    inline = data.draw(st.sets(st.integers(min_value=1, max_value=min(last, FEED_COLUMNS))))
    events = {sequence: f'{{"id":"m:{sequence}"}}' for sequence in inline}
    row = LedgerRow(message_id="m", status=Status.SENT, feed_sequence=last, feed_events=events)
    entity = row.to_entity()
    entity["Feed1"] = "not a feed column"  # a look-alike column name is not an event
    assert LedgerRow.from_entity(entity).feed_events == events


@given(sequence=SEQUENCES, size=st.sampled_from([10, 4000, 4001]))
def test_an_event_is_a_column_exactly_when_the_outbox_says_it_is_inline(sequence: int, size: int) -> None:
    event = OutboxRow("m", sequence, "x" * size)
    events = {sequence: event.event_json} if event.inline else {}
    entity = LedgerRow(message_id="m", status=Status.SENT, feed_sequence=sequence, feed_events=events).to_entity()
    assert (feed_column(sequence) in entity) == event.inline
    assert feed_events_of(entity) == events


def test_a_row_without_a_feed_sequence_has_no_events() -> None:
    assert feed_events_of({"PartitionKey": "m", feed_column(1): "{}"}) == {}
