"""The local topic's pure parts: the publish parser never crashes, SAS tokens are checked as signed."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.eventgrid import generate_sas
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.acs.models import EventSchema
from devstack.eventgrid.auth import refusal
from devstack.eventgrid.publish import PublishRefused, parse

ENDPOINT = "http://127.0.0.1:8766/api/events"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()))
keys = st.binary(min_size=16, max_size=64).map(lambda raw: base64.b64encode(raw).decode())


@settings(max_examples=150, deadline=None)
@given(bodies, st.sampled_from(EventSchema), st.sampled_from(["application/cloudevents+json", "application/json"]))
def test_any_body_is_accepted_as_events_or_refused_as_event_grid_would(
    body: bytes, schema: EventSchema, content_type: str
) -> None:
    """Whatever is posted, the parser returns event objects or raises a 400/413 with an error body."""
    outcome = _parse_or_refusal(body, content_type, schema)
    if isinstance(outcome, PublishRefused):
        assert outcome.status in (400, 413) and outcome.body()["error"]["details"]
    else:
        assert outcome and all(isinstance(event, dict) for event in outcome)


def _parse_or_refusal(body: bytes, content_type: str, schema: EventSchema) -> list[dict[str, Any]] | PublishRefused:
    try:
        return parse(body, content_type, schema, "/topic")
    except PublishRefused as refused:
        return refused


@settings(max_examples=50, deadline=None)
@given(keys, keys, st.integers(min_value=-3600, max_value=3600).filter(lambda s: abs(s) > 5))
def test_sas_tokens_pass_only_with_the_right_key_before_expiry(key: str, other: str, seconds: int) -> None:
    """A token generate_sas signed with the topic key passes until it expires; another key's token never does."""
    expiry = datetime.now(UTC) + timedelta(seconds=seconds)
    verdict = refusal({"aeg-sas-token": generate_sas(ENDPOINT, key, expiry)}, key, False, "127.0.0.1")
    assert (verdict is None) == (seconds > 0)
    if key != other:
        assert refusal({"aeg-sas-token": generate_sas(ENDPOINT, other, expiry)}, key, False, "127.0.0.1") is not None
