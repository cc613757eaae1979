"""The fallback fields of the send request: compatible with version 1 requests, each alternative checked as
the request it becomes, and the chain built from them deterministic."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import ValidationFailed
from shared.ledger import canonical_payload
from shared.models import MESSAGE_ID_PATTERN, FallbackTrigger
from shared.validation import check_request, child_request, fallback_id, parse_request
from tests.fakes import unit_settings

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)
SETTINGS = unit_settings()
BASE = {"id": "m-1", "channel": "whatsapp", "to": "+14255550100", "content": {"text": "your code is 1234"}}


def test_a_version_1_request_keeps_its_canonical_form() -> None:
    """No fallback fields: nothing new in the stored JSON, so the payload digest of a request accepted
    before the fields existed still matches on redelivery."""
    request = parse_request(json.dumps(BASE))
    stored = canonical_payload(request, "m-1")
    assert "fallback" not in stored and "fallbackOn" not in stored
    assert stored == (
        '{"schemaVersion":1,"id":"m-1","to":"+14255550100","purpose":"transactional","metadata":{},'
        '"delivery":"at-most-once","channel":"whatsapp","content":{"text":"your code is 1234"}}'
    )


def test_fallback_on_defaults_to_failed_expired_and_refused() -> None:
    request = parse_request(json.dumps({**BASE, "fallback": [{"channel": "sms", "to": "+14255550101"}]}))
    assert request.fallback_triggers == (FallbackTrigger.FAILED, FallbackTrigger.EXPIRED, FallbackTrigger.REFUSED)
    assert "fallbackOn" not in canonical_payload(request, "m-1")


def test_fallback_on_without_fallback_is_a_field_error() -> None:
    with pytest.raises(ValidationFailed) as raised:
        parse_request(json.dumps({**BASE, "fallbackOn": ["failed"]}))
    assert [e.field for e in raised.value.errors] == ["fallbackOn"]


def test_child_ids_are_derived_from_the_parents() -> None:
    assert [fallback_id("m"), fallback_id("m.fb1"), fallback_id("m.fb2")] == ["m.fb1", "m.fb2", "m.fb3"]
    long = "a" * 126
    assert re.fullmatch(MESSAGE_ID_PATTERN, fallback_id(long)) and fallback_id(long) == fallback_id(long)
    assert fallback_id(long) != fallback_id("b" * 126)


_ADDRESSES = {"sms": ["+14255550101", "4255550101"], "whatsapp": ["+14255550102"], "email": ["a@example.com", "x"]}
_CONTENT = {
    "sms": [None, {"text": "hello"}],
    "whatsapp": [None, {"text": "hello"}],
    "email": [None, {"subject": "Hi", "text": "hello"}],
}


@st.composite
def _entries(draw: st.DrawFn) -> dict[str, Any]:
    channel = draw(st.sampled_from(["sms", "whatsapp", "email"]))
    entry: dict[str, Any] = {"channel": channel, "to": draw(st.sampled_from(_ADDRESSES[channel]))}
    content = draw(st.sampled_from(_CONTENT[channel]))
    return entry | ({"content": content} if content else {})


@settings(max_examples=150, deadline=None)
@given(
    entries=st.lists(_entries(), min_size=1, max_size=4),
    triggers=st.none() | st.lists(st.sampled_from([t.value for t in FallbackTrigger]), min_size=1, max_size=5),
)
def test_a_request_with_alternatives_is_field_errors_or_a_chain_of_valid_requests(
    entries: list[dict[str, Any]], triggers: list[str] | None
) -> None:
    """Either every error names a fallback field, or each alternative becomes a valid request of its own,
    linked by derived ids, carrying the alternatives after it and the same triggers."""
    body = {**BASE, "fallback": entries} | ({"fallbackOn": triggers} if triggers else {})
    try:
        request = parse_request(json.dumps(body))
        check_request(request, SETTINGS, "m-1", NOW)
    except ValidationFailed as exc:
        errors = exc.errors
    else:
        errors = []
    if errors:
        assert all(e.field.startswith("fallback") for e in errors), errors
        return
    parent, parent_id = request, "m-1"
    for position, entry in enumerate(entries):
        child_id = fallback_id(parent_id)
        child = child_request(parent, child_id)
        assert check_request(child, SETTINGS, child_id, NOW).message_id == child_id
        assert child.channel == entry["channel"] and child.to == entry["to"]
        assert len(child.fallback or []) == len(entries) - position - 1
        assert child.fallback_triggers == (request.fallback_triggers if child.fallback else ())
        assert child_request(parent, child_id) == child  # the same child, whoever builds it
        parent, parent_id = child, child_id
