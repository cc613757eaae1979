"""Settings of the local Event Grid topic and of its webhook subscriptions.

Why these numbers: they are Event Grid's, from "Event Grid message delivery and retry"
(https://learn.microsoft.com/azure/event-grid/delivery-and-retry): retries at 10 s, 30 s, 1 min,
5 min, 10 min, 30 min, 1 h, 3 h, 6 h, then every 12 h, with a small randomization; at most 30
attempts and a 1440-minute time to live by default (whichever ends first); a 30-second wait for an
answer; no retry for a webhook's 400, 401, 403 and 413; 503 retried after 30 s or more and 408 after
2 min or more. `time_scale` shrinks every delay by the same factor so tests see the real shape in
milliseconds; 1.0 is Event Grid's own clock.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from devstack.acs.config import MAX_EVENTS_PER_BATCH, MAX_PREFERRED_BATCH_KB
from devstack.acs.models import EventSchema

# base64("eventgrid-local-dev-key-not-secret!!"): a published development key, like Azurite's.
DEFAULT_KEY = base64.b64encode(b"eventgrid-local-dev-key-not-secret!!").decode("ascii")
DEFAULT_TOPIC = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local/providers/"
    "Microsoft.EventGrid/topics/contact-messages-feed"
)
RETRY_SCHEDULE = (10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 10800.0, 21600.0, 43200.0)
# "Retry after N seconds or more" for these answers; every other failure follows the schedule alone.
MINIMUM_RETRY_DELAY = {503: 30.0, 408: 120.0}
MAX_DELIVERY_ATTEMPTS = 30
MAX_EVENT_TTL_MINUTES = 1440


class ConfigError(ValueError):
    """A setting Event Grid would refuse (for example 31 delivery attempts)."""


@dataclass(frozen=True)
class RetryPolicy:
    """A subscription's retry policy (`maxDeliveryAttempts`, `eventTimeToLiveInMinutes`) and the clock."""

    max_delivery_attempts: int = MAX_DELIVERY_ATTEMPTS
    event_ttl_minutes: float = MAX_EVENT_TTL_MINUTES
    time_scale: float = 1.0
    jitter: float = 0.1
    response_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_delivery_attempts <= MAX_DELIVERY_ATTEMPTS:
            raise ConfigError(f"max delivery attempts must be 1 to {MAX_DELIVERY_ATTEMPTS}, as in Event Grid")
        if not 0 < self.event_ttl_minutes <= MAX_EVENT_TTL_MINUTES:
            raise ConfigError(f"event time to live must be 1 to {MAX_EVENT_TTL_MINUTES} minutes, as in Event Grid")
        if self.time_scale <= 0 or self.jitter < 0 or self.response_timeout <= 0:
            raise ConfigError("time scale and response timeout must be positive, jitter not negative")

    def delay_after(self, failures: int, status: int | None) -> float:
        """Seconds to wait (before jitter) after the `failures`-th failed attempt that answered `status`."""
        step = RETRY_SCHEDULE[min(failures, len(RETRY_SCHEDULE)) - 1]
        return max(step, MINIMUM_RETRY_DELAY.get(status or 0, 0.0)) * self.time_scale

    @property
    def ttl_seconds(self) -> float:
        return self.event_ttl_minutes * 60 * self.time_scale


@dataclass(frozen=True)
class Subscription:
    """A webhook event subscription: where to deliver, in which schema, in what batches, how persistently.

    The schema is the topic's input schema (the local topic does not convert between schemas); it decides
    the validation handshake: a `SubscriptionValidationEvent` for the Event Grid schema, the CloudEvents
    `OPTIONS` abuse-protection request for CloudEvents.
    """

    name: str
    endpoint: str
    max_events_per_batch: int = 1
    preferred_batch_kb: int = 64
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if not 3 <= len(self.name) <= 64 or not all(ch.isalnum() or ch == "-" for ch in self.name):
            raise ConfigError("subscription names are 3 to 64 letters, digits and hyphens, as in Event Grid")
        if not self.endpoint.startswith(("http://", "https://")):
            raise ConfigError("a webhook endpoint must be an http(s) URL")
        if not 1 <= self.max_events_per_batch <= MAX_EVENTS_PER_BATCH:
            raise ConfigError(f"max events per batch must be 1 to {MAX_EVENTS_PER_BATCH}, as in Event Grid")
        if not 1 <= self.preferred_batch_kb <= MAX_PREFERRED_BATCH_KB:
            raise ConfigError(f"preferred batch size must be 1 to {MAX_PREFERRED_BATCH_KB} KB, as in Event Grid")


@dataclass(frozen=True)
class TopicSettings:
    """The custom topic: its access key, its input schema, and whether bearer tokens are accepted."""

    access_key: str = DEFAULT_KEY
    input_schema: EventSchema = EventSchema.CLOUDEVENTS
    topic: str = DEFAULT_TOPIC
    allow_bearer: bool = False

    def __post_init__(self) -> None:
        try:
            base64.b64decode(self.access_key, validate=True)
        except ValueError as exc:
            raise ConfigError("the access key must be base64, as Event Grid's keys are") from exc
