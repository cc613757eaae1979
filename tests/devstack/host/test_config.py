"""host.json reading: defaults, Development polling, validation, TimeSpan values, retry policies."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from devstack.host.backoff import RandomizedExponentialBackoff
from devstack.host.config import HostConfigError, HostEnvironment, load_host_config
from devstack.host.retry import from_decorator, from_host_json
from devstack.host.timespan import parse_timespan

DEVELOPMENT = HostEnvironment(is_development=True, processor_count=4, is_dynamic_sku=False)
PRODUCTION = HostEnvironment(is_development=False, processor_count=4, is_dynamic_sku=False)


def host_json(folder: Path, document: dict[str, object]) -> Path:
    (folder / "host.json").write_text(json.dumps(document))
    return folder


def test_development_shortens_the_default_polling_interval(tmp_path: Path) -> None:
    """An unset maxPollingInterval is 2 s in Development and 1 min otherwise."""
    folder = host_json(tmp_path, {"version": "2.0"})
    intervals = (
        load_host_config(folder, DEVELOPMENT).queues.max_polling_interval,
        load_host_config(folder, PRODUCTION).queues.max_polling_interval,
    )
    assert intervals == (timedelta(seconds=2), timedelta(minutes=1))


def test_new_batch_threshold_defaults_to_half_batch_times_cpus(tmp_path: Path) -> None:
    """newBatchThreshold defaults to (batchSize / 2) * processorCount."""
    folder = host_json(tmp_path, {"extensions": {"queues": {"batchSize": 10}}})
    assert load_host_config(folder, DEVELOPMENT).queues.new_batch_threshold == 20


def test_batch_size_above_32_is_rejected(tmp_path: Path) -> None:
    """batchSize must be 1..32, as in QueuesOptions."""
    with pytest.raises(HostConfigError):
        load_host_config(host_json(tmp_path, {"extensions": {"queues": {"batchSize": 33}}}), DEVELOPMENT)


def test_function_timeout_minus_one_is_unbounded(tmp_path: Path) -> None:
    """functionTimeout "-1" disables the timeout; unset is 30 minutes off Consumption."""
    assert load_host_config(host_json(tmp_path, {"functionTimeout": "-1"}), DEVELOPMENT).function_timeout is None
    assert load_host_config(host_json(tmp_path, {}), DEVELOPMENT).function_timeout == timedelta(minutes=30)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:00:02", timedelta(seconds=2)),
        ("00:00:00.200", timedelta(milliseconds=200)),
        ("1.02:00:00", timedelta(days=1, hours=2)),
        ("2000", timedelta(days=2000)),
    ],
)
def test_timespans_parse_like_dotnet(text: str, expected: timedelta) -> None:
    """TimeSpan strings parse as .NET does; a bare number is days, not milliseconds."""
    assert parse_timespan(text) == expected


def test_host_json_retry_policy_is_read(tmp_path: Path) -> None:
    """A host-level fixedDelay retry gives its count and delay."""
    policy = from_host_json({"strategy": "fixedDelay", "maxRetryCount": 2, "delayInterval": "00:00:03"})
    assert (policy.max_retry_count, policy.fixed_delay) == (2, timedelta(seconds=3))


def test_decorator_retry_policy_is_read_like_the_worker() -> None:
    """`@app.retry` exponential settings become min/max intervals; -1 retries forever."""
    policy = from_decorator(
        {
            "strategy": "exponential_backoff",
            "max_retry_count": "-1",
            "minimum_interval": "00:00:01",
            "maximum_interval": "00:00:30",
        }
    )
    assert (policy.allows(1000), policy.minimum_interval, policy.maximum_interval) == (
        True,
        timedelta(seconds=1),
        timedelta(seconds=30),
    )


def test_polling_backoff_grows_to_the_maximum_and_resets() -> None:
    """Empty polls grow 100 ms -> max; a poll that found messages resets to 100 ms."""
    backoff = RandomizedExponentialBackoff(timedelta(milliseconds=100), timedelta(seconds=2))
    delays = [backoff.next_delay(succeeded=False) for _ in range(12)]
    assert delays[0] == timedelta(milliseconds=100)
    assert delays == sorted(delays) and delays[-1] == timedelta(seconds=2)
    assert backoff.next_delay(succeeded=True) == timedelta(milliseconds=100)
