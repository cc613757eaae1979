"""Emulator settings: what is fixed at start and what the admin API may change while it runs.

Why frozen: the settings are read by request handlers and by delivery tasks at any moment; a change
through `PUT /admin/config` swaps in a new object instead of mutating one that a task is reading.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from devstack.acs.models import DEFAULT_TOPIC, DataCasing, EventSchema

# base64("acs-emulator-dev-key-not-secret!"): a published development key, like Azurite's.
DEFAULT_KEY = base64.b64encode(b"acs-emulator-dev-key-not-secret!").decode("ascii")
DEFAULT_SUBSCRIPTION = "LOCAL-ACS-EVENTS"
# What infra/main.bicep sets for the record_event subscription (eventMaxEventsPerBatch): the local stack
# and the benchmarks deliver as the deployment does. Tests turn batching on where they need it.
DEPLOYED_MAX_EVENTS_PER_BATCH = 1
# Event Grid's ranges for a subscription's batching settings (maxEventsPerBatch, preferredBatchSizeInKilobytes)
MAX_EVENTS_PER_BATCH = 5000
MAX_PREFERRED_BATCH_KB = 1024


class ConfigError(ValueError):
    """A setting that cannot be used (for example an access key that is not base64)."""


@dataclass(frozen=True)
class DeliveryPolicy:
    """How webhook deliveries are retried and bounded. Event Grid's real schedule is minutes to hours;
    the emulator keeps the shape (exponential, capped attempts, no retry on 400/401/403/413) but
    shortens the clock so tests finish."""

    backoff: float = 0.5
    max_attempts: int = 8
    timeout: float = 30.0
    concurrency: int = 16


@dataclass(frozen=True)
class Settings:
    """Everything that shapes the emulator's behaviour.

    `max_events_per_batch` and `preferred_batch_kb` are the webhook subscription's batching settings;
    1 event (Event Grid's default) means one event per request.
    """

    access_key: str = DEFAULT_KEY
    webhook_url: str | None = None
    report_delay: float = 1.0
    late_delay: float | None = None
    operation_delay: float | None = None
    schema: EventSchema = EventSchema.EVENTGRID
    casing: DataCasing = DataCasing.CAMEL
    topic: str = DEFAULT_TOPIC
    subscription_name: str = DEFAULT_SUBSCRIPTION
    allow_bearer: bool = False
    lenient_host: bool = False
    max_events_per_batch: int = 1
    preferred_batch_kb: int = 64
    service_window: bool = False  # fail free WhatsApp text to users silent for 24 hours (Meta's 131047)
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)

    def __post_init__(self) -> None:
        try:
            base64.b64decode(self.access_key, validate=True)
        except ValueError as exc:
            raise ConfigError("access key must be base64, as in an ACS connection string") from exc
        if self.report_delay < 0 or (self.late_delay is not None and self.late_delay < 0):
            raise ConfigError("delays must not be negative")
        if not 1 <= self.max_events_per_batch <= MAX_EVENTS_PER_BATCH:
            raise ConfigError(f"max events per batch must be 1 to {MAX_EVENTS_PER_BATCH}, as in Event Grid")
        if not 1 <= self.preferred_batch_kb <= MAX_PREFERRED_BATCH_KB:
            raise ConfigError(f"preferred batch size must be 1 to {MAX_PREFERRED_BATCH_KB} KB, as in Event Grid")

    @property
    def effective_late_delay(self) -> float:
        """Late reports come after `late_delay`, by default ten times the normal report delay."""
        return self.late_delay if self.late_delay is not None else 10 * self.report_delay

    @property
    def effective_operation_delay(self) -> float:
        """How long an email operation stays Running; by default the report delay."""
        return self.operation_delay if self.operation_delay is not None else self.report_delay

    def to_json(self) -> dict[str, Any]:
        return {
            "webhook": self.webhook_url,
            "reportDelay": self.report_delay,
            "lateDelay": self.effective_late_delay,
            "operationDelay": self.effective_operation_delay,
            "schema": str(self.schema),
            "casing": str(self.casing),
            "topic": self.topic,
            "allowBearer": self.allow_bearer,
            "lenientHost": self.lenient_host,
            "maxEventsPerBatch": self.max_events_per_batch,
            "preferredBatchSizeInKilobytes": self.preferred_batch_kb,
            "serviceWindow": self.service_window,
        }


def _whole_number(value: Any) -> int:
    """A JSON integer as it is: `int()` would quietly turn 2.5 into 2 and true into 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"not a whole number: {value!r}")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"not true or false: {value!r}")
    return value


_ADMIN_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "reportDelay": ("report_delay", float),
    "lateDelay": ("late_delay", float),
    "operationDelay": ("operation_delay", float),
    "webhook": ("webhook_url", str),
    "schema": ("schema", EventSchema),
    "casing": ("casing", DataCasing),
    "topic": ("topic", str),
    "maxEventsPerBatch": ("max_events_per_batch", _whole_number),
    "preferredBatchSizeInKilobytes": ("preferred_batch_kb", _whole_number),
    "serviceWindow": ("service_window", _boolean),
}
_NULLABLE = {"webhook", "lateDelay", "operationDelay"}


def updated(settings: Settings, body: dict[str, Any]) -> Settings:
    """Apply a `PUT /admin/config` body (camelCase keys; null clears webhook and the optional delays)."""
    unknown = set(body) - set(_ADMIN_KEYS)
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
    changes: dict[str, Any] = {}
    for key, value in body.items():
        name, convert = _ADMIN_KEYS[key]
        if value is None and key not in _NULLABLE:
            raise ConfigError(f"{key} cannot be null")
        try:
            changes[name] = None if value is None else convert(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid {key}: {value!r}") from exc
    return replace(settings, **changes)
