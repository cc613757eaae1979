"""host.json: the parts of it the runner implements, validated like the host validates them.

Why: the same host.json must work under `func start` and here, so we read the real schema
(`extensions.queues`, `extensions.http.routePrefix`, `singleton`, `retry`, `functionTimeout`,
`functions`) with the host's defaults and ranges, and ignore everything else (e.g. `extensionBundle`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from devstack.host.log_levels import LogLevels
from devstack.host.retry import RetryPolicy, from_host_json
from devstack.host.timespan import parse_timespan

MAX_BATCH_SIZE = 32
MIN_POLLING_INTERVAL = timedelta(milliseconds=100)
DEFAULT_POLLING_INTERVAL = timedelta(minutes=1)
DEVELOPMENT_POLLING_INTERVAL = timedelta(seconds=2)


class HostConfigError(ValueError):
    """host.json holds a value the real host would reject."""


@dataclass(frozen=True)
class HostEnvironment:
    """Facts about the machine/plan that change host defaults."""

    is_development: bool
    processor_count: int
    is_dynamic_sku: bool


@dataclass(frozen=True)
class QueuesOptions:
    """`extensions.queues` (class `QueuesOptions` in the Storage extension)."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: timedelta = DEFAULT_POLLING_INTERVAL
    visibility_timeout: timedelta = timedelta(0)
    max_dequeue_count: int = 5
    message_encoding: str = "base64"


@dataclass(frozen=True)
class SingletonOptions:
    """`singleton`: listener lease period and how often a non-holder retries."""

    listener_lock_period: timedelta = timedelta(seconds=60)
    listener_lock_recovery_polling_interval: timedelta = timedelta(seconds=60)


@dataclass(frozen=True)
class HostConfig:
    queues: QueuesOptions
    singleton: SingletonOptions
    retry: RetryPolicy | None
    function_timeout: timedelta | None
    route_prefix: str
    functions: tuple[str, ...] | None
    log_levels: LogLevels = field(default_factory=LogLevels)


def load_host_config(app_dir: Path, env: HostEnvironment) -> HostConfig:
    """Read `host.json` (missing file = all defaults) and apply the host's defaults and checks."""
    path = app_dir / "host.json"
    raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    root = _ci(raw)
    extensions = _ci(root.get("extensions") or {})
    functions = root.get("functions")
    return HostConfig(
        queues=_queues(_ci(extensions.get("queues") or {}), env),
        singleton=_singleton(_ci(root.get("singleton") or {})),
        retry=from_host_json(root["retry"]) if root.get("retry") else None,
        function_timeout=_function_timeout(root.get("functiontimeout"), env),
        route_prefix=str(_ci(extensions.get("http") or {}).get("routeprefix", "api")).strip("/"),
        functions=tuple(str(name) for name in functions) if functions is not None else None,
        log_levels=LogLevels.from_config(_ci(root.get("logging") or {}).get("loglevel") or {}, os.environ),
    )


def host_environment(environ: Mapping[str, str] = os.environ) -> HostEnvironment:
    """Development unless AZURE_FUNCTIONS_ENVIRONMENT says otherwise; Dynamic SKU counts as 1 CPU."""
    dynamic = environ.get("WEBSITE_SKU", "").lower() == "dynamic"
    return HostEnvironment(
        is_development=environ.get("AZURE_FUNCTIONS_ENVIRONMENT", "Development").lower() == "development",
        processor_count=1 if dynamic else (os.cpu_count() or 1),
        is_dynamic_sku=dynamic,
    )


def _ci(section: Mapping[str, Any]) -> dict[str, Any]:
    # .NET configuration keys are case-insensitive.
    return {str(key).lower(): value for key, value in section.items()}


def _queues(section: dict[str, Any], env: HostEnvironment) -> QueuesOptions:
    batch_size = int(section.get("batchsize", 16))
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise HostConfigError(f"extensions.queues.batchSize must be 1..{MAX_BATCH_SIZE}, got {batch_size}")
    threshold = int(section.get("newbatchthreshold", (batch_size // 2) * env.processor_count))
    max_dequeue = int(section.get("maxdequeuecount", 5))
    encoding = str(section.get("messageencoding", "base64")).lower()
    if threshold < 0 or max_dequeue < 1 or encoding not in ("base64", "none"):
        raise HostConfigError(
            "extensions.queues: newBatchThreshold >= 0, maxDequeueCount >= 1, messageEncoding base64|none"
        )
    return QueuesOptions(
        batch_size=batch_size,
        new_batch_threshold=threshold,
        max_polling_interval=_polling_interval(section.get("maxpollinginterval"), env),
        visibility_timeout=parse_timespan(section.get("visibilitytimeout", "00:00:00")),
        max_dequeue_count=max_dequeue,
        message_encoding=encoding,
    )


def _polling_interval(value: object, env: HostEnvironment) -> timedelta:
    if value is None:
        # StorageQueuesWebJobsBuilderExtensions: an unset value becomes 2 s in Development.
        return DEVELOPMENT_POLLING_INTERVAL if env.is_development else DEFAULT_POLLING_INTERVAL
    interval = parse_timespan(value)
    if interval < MIN_POLLING_INTERVAL:
        raise HostConfigError(f"extensions.queues.maxPollingInterval must be >= 100 ms, got {value}")
    return interval


def _singleton(section: dict[str, Any]) -> SingletonOptions:
    period = parse_timespan(section.get("listenerlockperiod", "00:01:00"))
    if not timedelta(seconds=15) <= period <= timedelta(seconds=60):
        raise HostConfigError("singleton.listenerLockPeriod must be between 00:00:15 and 00:01:00")
    recovery = parse_timespan(section.get("listenerlockrecoverypollinginterval", "00:01:00"))
    return SingletonOptions(listener_lock_period=period, listener_lock_recovery_polling_interval=recovery)


def _function_timeout(value: object, env: HostEnvironment) -> timedelta | None:
    if value is None:
        return timedelta(minutes=5 if env.is_dynamic_sku else 30)
    if str(value).strip() == "-1":
        return None  # unbounded (Premium/Dedicated)
    return parse_timespan(value)
