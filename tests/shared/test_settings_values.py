"""ACS_TIMEOUTS (the bounded waits of every ACS call, and the claim lease that follows from them) and
TRACE_SAMPLING_RATIO: settings parsed once, refused loudly when out of range."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.adapters.acs import client_options
from shared.errors import ConfigurationError
from shared.settings import CLAIM_MARGIN, AcsTimeouts, load_settings
from tests.shared.test_identity import GOV


def _load(value: str | None) -> AcsTimeouts:
    env = dict(GOV) if value is None else {**GOV, "ACS_TIMEOUTS": value}
    return load_settings(env).acs_timeouts


def test_unset_keeps_ten_and_thirty_seconds_and_a_sixty_second_claim_lease() -> None:
    assert _load(None) == AcsTimeouts(10.0, 30.0)
    assert _load(None).claim_lease == timedelta(seconds=60)


@settings(max_examples=50, deadline=None)
@given(st.floats(0.5, 600), st.floats(0.5, 600))
def test_the_claim_lease_outlasts_any_configured_call_by_the_margin(connect: float, read: float) -> None:
    """Whatever the timeouts, a claim is trusted for one whole call plus the margin, never less."""
    timeouts = _load(json.dumps({"connectSeconds": connect, "readSeconds": read}))
    assert timeouts.claim_lease == timedelta(seconds=connect + read) + CLAIM_MARGIN
    options = client_options(timeouts)
    assert (options["connection_timeout"], options["read_timeout"], options["retry_total"]) == (connect, read, 0)


@pytest.mark.parametrize(
    "value",
    ['{"connectSeconds": 0}', '{"readSeconds": -1}', '{"readSecs": 5}', '"30"', "[1]", "{", '{"readSeconds": "x"}'],
)
def test_a_bad_value_stops_the_app_at_start_with_the_setting_named(value: str) -> None:
    with pytest.raises(ConfigurationError, match="ACS_TIMEOUTS"):
        _load(value)


@pytest.mark.parametrize("value", ["0", "-0.5", "1.5", "nan", "inf", "ten", "0x1"])
def test_a_trace_sampling_ratio_outside_zero_to_one_stops_the_app(value: str) -> None:
    with pytest.raises(ConfigurationError, match="TRACE_SAMPLING_RATIO"):
        load_settings({**GOV, "TRACE_SAMPLING_RATIO": value})


@settings(max_examples=50, deadline=None)
@given(st.floats(min_value=0.0, max_value=1.0, exclude_min=True))
def test_any_ratio_in_zero_to_one_is_kept(ratio: float) -> None:
    assert load_settings({**GOV, "TRACE_SAMPLING_RATIO": repr(ratio)}).trace_sampling_ratio == ratio
    assert load_settings(dict(GOV)).trace_sampling_ratio == 1.0
