"""The status feed's event contract: deterministic ids, masked recipients, a schema that matches."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core.messaging import CloudEvent
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.feed import (
    DATA_SCHEMA,
    EVENT_TYPE,
    STATUS_CHANGE_ADAPTER,
    StatusChange,
    cloud_event,
    data_of,
    event_id,
    status_change_json_schema,
)
from shared.models import MESSAGE_ID_PATTERN, Channel, Status

SCHEMA_FILE = Path(__file__).parents[2] / "schemas" / "message-status-changed.v1.json"
DATA_KEYS = {
    "messageId",
    "sequence",
    "status",
    "previousStatus",
    "channel",
    "recipientMasked",
    "changedAt",
    "reason",
    "correlationId",
    "metadata",
    "segments",
    "costEstimate",
}

message_ids = st.from_regex(MESSAGE_ID_PATTERN, fullmatch=True)
phones = st.integers(min_value=10**9, max_value=10**14 - 1).map(lambda n: f"+{n}")
emails = st.tuples(
    st.from_regex(r"[a-z0-9._%+-]{1,20}", fullmatch=True), st.from_regex(r"[a-z0-9-]{1,15}\.[a-z]{2,6}", fullmatch=True)
).map(lambda parts: f"{parts[0]}@{parts[1]}")
metadata_values = st.one_of(st.text(max_size=20), st.integers(-(2**31), 2**31), st.booleans())
moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@st.composite
def changes(draw: st.DrawFn) -> tuple[StatusChange, str]:
    """A change built from a raw recipient, and that recipient (which must never appear in the event)."""
    recipient = draw(st.one_of(phones, emails))
    change = StatusChange.masking(
        recipient,
        message_id=draw(message_ids),
        sequence=draw(st.integers(1, 10_000)),
        status=draw(st.sampled_from(Status)),
        previous_status=draw(st.none() | st.sampled_from(Status)),
        channel=draw(st.sampled_from(Channel)),
        changed_at=draw(moments),
        reason=draw(st.none() | st.sampled_from(["MaxDeliveryAttemptsExceeded", "Bounced", "Expired"])),
        correlation_id=draw(st.none() | st.text(max_size=128)),
        metadata=draw(st.dictionaries(st.text(min_size=1, max_size=10), metadata_values, max_size=10)),
        segments=draw(st.none() | st.integers(0, 10)),
        cost_estimate=draw(st.none() | st.floats(0, 100, allow_nan=False)),
    )
    return change, recipient


def _sample(**overrides: Any) -> StatusChange:
    fields: dict[str, Any] = {
        "message_id": "order-42",
        "sequence": 3,
        "status": Status.DELIVERED,
        "previous_status": Status.SENT,
        "channel": Channel.SMS,
        "changed_at": datetime(2026, 5, 1, 12, 0, 0, 250000, tzinfo=UTC),
        "correlation_id": "crm-7",
        "metadata": {"orderId": "42", "priority": 2},
        "segments": 1,
        "cost_estimate": 0.0075,
        **overrides,
    }
    return StatusChange.masking("+14255550123", **fields)


def test_published_json_schema_matches_the_model() -> None:
    """schemas/message-status-changed.v1.json is exactly what StatusChange generates."""
    assert json.loads(SCHEMA_FILE.read_text()) == status_change_json_schema()


def test_the_event_is_a_cloudevent_the_sdk_reads_back() -> None:
    """Type, subject, time, dataschema and data survive azure-core's CloudEvent parser."""
    change = _sample()
    parsed = CloudEvent.from_dict(cloud_event(change, source="/contact-messages/prod"))
    assert parsed.type == EVENT_TYPE
    assert parsed.subject == "messages/order-42"
    assert parsed.source == "/contact-messages/prod"
    assert parsed.id == "order-42:3"
    assert parsed.dataschema == DATA_SCHEMA == status_change_json_schema()["$id"]
    assert parsed.time == change.changed_at
    assert parsed.data == data_of(change)


def test_a_republished_change_has_the_same_id_and_body() -> None:
    """Building the event again (after a crash, or a replay) gives byte-identical JSON."""
    assert json.dumps(cloud_event(_sample())) == json.dumps(cloud_event(_sample()))


def test_a_later_transition_has_another_id() -> None:
    """The id follows the sequence, not the time or the status."""
    first = _sample(sequence=1, status=Status.ACCEPTED, previous_status=None)
    assert first.event_id != _sample().event_id
    assert _sample(changed_at=datetime(2030, 1, 1, tzinfo=UTC)).event_id == _sample().event_id


@settings(max_examples=100, deadline=None)
@given(changes())
def test_no_raw_address_or_unknown_field_reaches_the_event(case: tuple[StatusChange, str]) -> None:
    """Whatever the recipient, the event holds its masked form only, and data has exactly the contract's keys."""
    change, recipient = case
    event = cloud_event(change)
    assert recipient not in json.dumps(event)
    assert recipient.lower() not in json.dumps(event).lower()
    assert set(event["data"]) == DATA_KEYS
    assert event["data"]["recipientMasked"] == change.recipient_masked


@settings(max_examples=100, deadline=None)
@given(changes())
def test_the_data_round_trips_through_the_schema_model(case: tuple[StatusChange, str]) -> None:
    """The JSON a subscriber receives validates against the published model and gives the same change back."""
    change, _ = case
    received = json.loads(json.dumps(cloud_event(change)))
    assert STATUS_CHANGE_ADAPTER.validate_python(received["data"]) == change


@settings(max_examples=200, deadline=None)
@given(message_ids, st.integers(1, 10**9), message_ids, st.integers(1, 10**9))
def test_distinct_changes_never_share_an_id(id_a: str, seq_a: int, id_b: str, seq_b: int) -> None:
    """(message id, sequence) -> event id is one-to-one: the id splits back at its last ':'."""
    assert event_id(id_a, seq_a).rsplit(":", 1) == [id_a, str(seq_a)]
    assert (event_id(id_a, seq_a) == event_id(id_b, seq_b)) == ((id_a, seq_a) == (id_b, seq_b))


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"sequence": 0}, "sequence starts at 1"),
        ({"changed_at": datetime(2026, 1, 1)}, "time-zone aware"),
    ],
)
def test_a_change_refuses_what_the_contract_cannot_carry(overrides: dict[str, Any], why: str) -> None:
    """A sequence below 1 or a naive time is refused at construction."""
    with pytest.raises(ValueError, match=why):
        _sample(**overrides)


def test_a_raw_recipient_is_refused() -> None:
    """Building a change around an unmasked address fails at once instead of leaking it."""
    with pytest.raises(ValueError, match="masked"):
        StatusChange(
            message_id="m",
            sequence=1,
            status=Status.ACCEPTED,
            previous_status=None,
            channel=Channel.EMAIL,
            recipient_masked="alice@example.com",
            changed_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
