"""The corpus itself: every file names its source, and retargeting changes only correlation fields."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conformance.corpus import (
    HERE,
    Casing,
    Sample,
    Schema,
    Target,
    flip_keys,
    in_schema,
    load_rest,
    load_samples,
    retarget,
    with_casing,
)

SAMPLES = load_samples()
TOPIC = "/subscriptions/s/resourceGroups/g/providers/P/t/acs"
TARGET = Target("m-1", "provider-1", "+18005550100", "+14255550100", TOPIC)
WHATSAPP_TARGET = Target("m-1", "provider-1", "6b36a8e2-0000-4000-8000-000000000001", "+14255550100", TOPIC)
ENVELOPE = {"id", "topic", "source", "subject"}
CORRELATION = ENVELOPE | {f"data.{k}" for k in ("messageid", "tag", "from", "to", "sender", "recipient")}


def _changed(before: Any, after: Any, path: str = "") -> set[str]:
    """Lower-cased paths whose values differ (keys added or removed count as changes too)."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = {k.lower(): k for k in before} | {k.lower(): k for k in after}
        lowered_before = {k.lower(): v for k, v in before.items()}
        lowered_after = {k.lower(): v for k, v in after.items()}
        changed: set[str] = set()
        for key in keys:
            prefix = f"{path}.{key}" if path else key
            changed |= _changed(lowered_before.get(key), lowered_after.get(key), prefix)
        return changed
    return set() if before == after else {path}


def test_every_file_names_its_source() -> None:
    for path in [*HERE.glob("events/*.json"), *HERE.glob("rest/*.json")]:
        source = (load_rest(path.stem) if path.parent.name == "rest" else {"source": _source_of(path.stem)})["source"]
        assert source.get("url") or (source.get("repo") and source.get("path") and source.get("commit")), path


def _source_of(name: str) -> dict[str, Any]:
    return next(s.source for s in SAMPLES if s.name == name)


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_retargeting_changes_only_correlation_fields(sample: Sample) -> None:
    after = retarget(sample, TARGET)
    changed = _changed(sample.event, after)
    assert changed <= CORRELATION, changed - CORRELATION
    assert set(after) == set(sample.event)  # no envelope key added, dropped or re-cased


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_numbers_keep_their_published_form(sample: Sample) -> None:
    """A number published without "+" is written without "+", and one with "+" keeps it. (A WhatsApp
    channel's side is its registration id, a GUID, whatever form the sample used.)"""
    target = WHATSAPP_TARGET if sample.kind.channel == "whatsapp" else TARGET
    after = {k.lower(): v for k, v in retarget(sample, target)["data"].items()}
    for key, published in sample.data().items():
        written = after[key.lower()]
        if key.lower() in ("from", "to") and written.lstrip("+").isdigit() and published[-1:].isdigit():
            assert written.startswith("+") == published.startswith("+"), key


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_schema_conversion_round_trips(sample: Sample) -> None:
    """Event Grid -> CloudEvents -> Event Grid gives the same envelope fields and the same data."""
    grid = in_schema(sample.event, Schema.EVENTGRID)
    cloud = in_schema(grid, Schema.CLOUDEVENTS)
    assert in_schema(cloud, Schema.EVENTGRID) == grid
    assert cloud["source"] == grid["topic"] and cloud["type"] == grid["eventType"]
    assert cloud.get("time") == grid.get("eventTime") and cloud["data"] == grid["data"]


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_flipped_casing_flips_every_data_key_and_nothing_else(sample: Sample) -> None:
    flipped = with_casing(sample.event, Casing.FLIPPED)
    data_key = next(k for k in sample.event if k.lower() == "data")
    assert flip_keys(flipped[data_key]) == sample.event[data_key]
    assert set(sample.data()).isdisjoint(flipped[data_key])
    assert {k: v for k, v in flipped.items() if k != data_key} == {
        k: v for k, v in sample.event.items() if k != data_key
    }
