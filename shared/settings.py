"""Application settings, read once from app settings (environment variables) into a frozen object.

Why one place: every setting the code reads is declared in `SETTINGS` below, so the Bicep parity
test can prove that Azure sets exactly what the code reads, and a bad deployment fails at start with
every problem listed at once instead of one message at a time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from shared.errors import ConfigurationError
from shared.models import Channel
from shared.retry import DEFAULT_SEND_RETRY, Backoff


@dataclass(frozen=True)
class SettingSpec:
    """One app setting the code reads: its name, whether Azure must set it, and what it is for."""

    name: str
    required: bool
    purpose: str
    secret: bool = False


# Every app setting the application code reads. Bicep must set each one (the parity test checks).
# Storage: either the connection string (local stack) or the identity-based `__accountName` form.
SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("AzureWebJobsStorage", False, "storage connection string (local stack only)", secret=True),
    SettingSpec("AzureWebJobsStorage__accountName", False, "storage account for identity-based access"),
    # The host's own identity-based storage settings: when set, the app uses the same endpoints (any cloud),
    # instead of deriving https://<account>.<service>.core.windows.net (Azure public cloud only).
    SettingSpec("AzureWebJobsStorage__queueServiceUri", False, "queue endpoint for identity-based access"),
    SettingSpec("AzureWebJobsStorage__tableServiceUri", False, "table endpoint for identity-based access"),
    SettingSpec("AzureWebJobsStorage__blobServiceUri", False, "blob endpoint for identity-based access"),
    SettingSpec("AZURE_CLIENT_ID", False, "client id of a user-assigned managed identity (unset: system-assigned)"),
    SettingSpec("ACS_ENDPOINT", False, "ACS endpoint for managed identity, https://<name>.communication.azure.com"),
    SettingSpec("ACS_CONNECTION_STRING", False, "ACS connection string (local emulator or key-based)", secret=True),
    SettingSpec("ACS_RESOURCE_IDS", True, "comma-separated ACS resource ids whose Event Grid events are trusted"),
    SettingSpec("SMS_SENDERS", False, "comma-separated E.164 numbers allowed as SMS senders; first is default"),
    SettingSpec("EMAIL_SENDERS", False, "comma-separated sender addresses; first is default"),
    SettingSpec("WHATSAPP_CHANNELS", False, "comma-separated WhatsApp channel registration ids; first is default"),
    SettingSpec(
        "WHATSAPP_SERVICE_WINDOW",
        False,
        "enforce: refuse free WhatsApp text outside the 24-hour window (Azure); off (default): leave it to Meta",
    ),
    SettingSpec("RATE_LIMITS", False, 'messages per minute per sender, JSON {"sms": 60, "<sender>": 10}'),
    SettingSpec("SMS_MAX_SEGMENTS", False, "largest SMS accepted, in segments (default 10)"),
    SettingSpec("PRICE_TABLE", False, 'estimated cost per unit, JSON {"sms": 0.0075, "email": 0.00025}'),
    SettingSpec("DELIVERY_SLA_MINUTES", False, 'minutes to wait for a report, JSON {"sms": 60, "email": 60}'),
    SettingSpec("RECONCILE_SCHEDULE", True, "NCRONTAB schedule of the reconcile timer (%RECONCILE_SCHEDULE%)"),
    SettingSpec("RETENTION_SCHEDULE", True, "NCRONTAB schedule of the retention timer (%RETENTION_SCHEDULE%)"),
    SettingSpec("RETENTION_DAYS", False, 'days to keep, JSON {"content": 7, "recipient": 30, "rows": 90}'),
    SettingSpec("CONSENT_HASH_KEY", True, "secret key for the keyed hash of recipient addresses", secret=True),
    SettingSpec("TABLE_PREFIX", False, "prefix of every table name (default cm)"),
    SettingSpec(
        "SEND_QUEUE",
        True,
        "name of the send queue; the triggers bind %SEND_QUEUE% and its priority lane %SEND_QUEUE%-priority "
        "(each with a -poison queue)",
    ),
    SettingSpec("APPLICATIONINSIGHTS_CONNECTION_STRING", False, "enables telemetry to Application Insights"),
    SettingSpec("FEED_TOPIC_ENDPOINT", False, "status feed: Event Grid custom topic endpoint (unset: no feed)"),
    SettingSpec("FEED_TOPIC_KEY", False, "status feed: topic access key (local topic only)", secret=True),
    SettingSpec("FEED_SOURCE", False, "status feed: the CloudEvents source of its events (default /contact-messages)"),
    SettingSpec(
        "SEND_RETRY",
        False,
        'backoff of sends that failed transiently, JSON {"baseSeconds": 5, "capSeconds": 300, "attempts": 15}',
    ),
    SettingSpec(
        "TRACE_SAMPLING_RATIO",
        False,
        "share of traces (invocation spans and their Azure SDK dependencies) sent to Application Insights, "
        "0 < r <= 1 (default 1); log records and metrics are never sampled",
    ),
    SettingSpec(
        "ACS_TIMEOUTS",
        False,
        'bounded waits of every ACS call, JSON {"connectSeconds": 10, "readSeconds": 30}; a crashed send\'s '
        "claim is trusted for their sum plus 20 s",
    ),
)
SETTING_NAMES: frozenset[str] = frozenset(spec.name for spec in SETTINGS)

DEFAULT_RATE_PER_MINUTE = {Channel.SMS: 60.0, Channel.EMAIL: 30.0, Channel.WHATSAPP: 60.0}
DEFAULT_PRICES = {Channel.SMS: 0.0075, Channel.EMAIL: 0.00025, Channel.WHATSAPP: 0.005}
DEFAULT_SLA_MINUTES = {Channel.SMS: 60.0, Channel.EMAIL: 60.0, Channel.WHATSAPP: 60.0}
# A send's claim outlives its ACS call by this much (the ledger write after the answer, clock skew).
CLAIM_MARGIN = timedelta(seconds=20)


@dataclass(frozen=True)
class AcsTimeouts:
    """How long any ACS call may wait to connect and then to read (azure-core's defaults wait 300 s
    each). Bounded waits are what let a claim younger than `claim_lease` be trusted to be alive."""

    connect_seconds: float = 10.0
    read_seconds: float = 30.0

    @property
    def claim_lease(self) -> timedelta:
        return timedelta(seconds=self.connect_seconds + self.read_seconds) + CLAIM_MARGIN


@dataclass(frozen=True)
class Settings:
    """Everything the application reads from its environment, parsed and checked."""

    storage_connection_string: str | None
    storage_account_name: str | None
    acs_endpoint: str | None
    acs_connection_string: str | None
    acs_resource_ids: frozenset[str]
    senders: Mapping[Channel, tuple[str, ...]]
    rate_limits: Mapping[str, float]
    sms_max_segments: int
    prices: Mapping[Channel, float]
    sla_minutes: Mapping[Channel, float]
    retention_days: Mapping[str, int]
    consent_hash_key: bytes
    table_prefix: str
    send_queue: str
    appinsights_connection_string: str | None = None
    send_retry: Backoff = DEFAULT_SEND_RETRY
    acs_timeouts: AcsTimeouts = AcsTimeouts()
    trace_sampling_ratio: float = 1.0
    managed_identity_client_id: str | None = None
    storage_service_uris: Mapping[str, str] = field(default_factory=dict)  # "queue" | "table" | "blob" -> URI
    feed_topic_endpoint: str | None = None
    feed_topic_key: str | None = None
    feed_source: str = ""
    enforce_service_window: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def poison_queue(self) -> str:
        return f"{self.send_queue}-poison"

    @property
    def priority_queue(self) -> str:
        """The high-priority lane: a queue and trigger of its own, so codes never wait behind a backlog."""
        return f"{self.send_queue}-priority"

    @property
    def priority_poison_queue(self) -> str:
        return f"{self.priority_queue}-poison"

    @property
    def queue_names(self) -> tuple[str, ...]:
        """Every queue the app uses: both lanes and their poison queues."""
        return (self.send_queue, self.poison_queue, self.priority_queue, self.priority_poison_queue)

    def default_sender(self, channel: Channel) -> str | None:
        options = self.senders.get(channel, ())
        return options[0] if options else None

    def rate_per_minute(self, channel: Channel, sender: str) -> float:
        """The configured limit for this sender, else its channel's, else the built-in default."""
        if sender in self.rate_limits:
            return self.rate_limits[sender]
        return self.rate_limits.get(channel.value, DEFAULT_RATE_PER_MINUTE[channel])


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _json_numbers(env: Mapping[str, str], name: str, problems: list[str]) -> dict[str, float]:
    raw = env.get(name, "").strip()
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        problems.append(f"{name}: not valid JSON ({exc.msg})")
        return {}
    if not isinstance(parsed, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in parsed.values()
    ):
        problems.append(f"{name}: must be a JSON object of non-negative numbers")
        return {}
    return {str(k): float(v) for k, v in parsed.items()}


def _channel_map(values: dict[str, float], defaults: Mapping[Channel, float]) -> dict[Channel, float]:
    return {channel: values.get(channel.value, default) for channel, default in defaults.items()}


def _check_storage_and_acs(env: Mapping[str, str], problems: list[str]) -> None:
    identity_based = env.get("AzureWebJobsStorage__accountName") or len(_service_uris(env)) == len(STORAGE_SERVICES)
    if not env.get("AzureWebJobsStorage") and not identity_based:
        problems.append(
            "AzureWebJobsStorage, AzureWebJobsStorage__accountName or the three "
            "AzureWebJobsStorage__<service>ServiceUri must be set"
        )
    if not env.get("ACS_ENDPOINT") and not env.get("ACS_CONNECTION_STRING"):
        problems.append("ACS_ENDPOINT or ACS_CONNECTION_STRING must be set")
    key = env.get("CONSENT_HASH_KEY", "")
    if not key:
        problems.append("CONSENT_HASH_KEY must be set (a long random secret)")
    elif key.startswith("@Microsoft.KeyVault("):
        # An unresolved Key Vault reference would silently become the hash key and orphan every opt-out.
        problems.append("CONSENT_HASH_KEY is an unresolved Key Vault reference (check the app's vault access)")


STORAGE_SERVICES = ("queue", "table", "blob")


def _service_uris(env: Mapping[str, str]) -> dict[str, str]:
    uris = {service: env.get(f"AzureWebJobsStorage__{service}ServiceUri", "").strip() for service in STORAGE_SERVICES}
    return {service: uri.rstrip("/") for service, uri in uris.items() if uri}


def _backoff(env: Mapping[str, str], problems: list[str]) -> Backoff:
    values = _json_numbers(env, "SEND_RETRY", problems)
    unknown = sorted(set(values) - {"baseSeconds", "capSeconds", "attempts"})
    if unknown:
        problems.append(f"SEND_RETRY: unknown keys {unknown}")
    default = DEFAULT_SEND_RETRY
    backoff = Backoff(
        base_seconds=values.get("baseSeconds", default.base_seconds),
        cap_seconds=values.get("capSeconds", default.cap_seconds),
        attempts=int(values.get("attempts", default.attempts)),
    )
    if backoff.base_seconds <= 0 or backoff.cap_seconds < backoff.base_seconds:
        problems.append("SEND_RETRY: baseSeconds must be positive and capSeconds at least baseSeconds")
    return backoff


def _ratio(env: Mapping[str, str], name: str, problems: list[str]) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:  # NaN fails too
        problems.append(f"{name}: must be a number above 0 and at most 1")
        return 1.0
    return value


def _acs_timeouts(env: Mapping[str, str], problems: list[str]) -> AcsTimeouts:
    values = _json_numbers(env, "ACS_TIMEOUTS", problems)
    unknown = sorted(set(values) - {"connectSeconds", "readSeconds"})
    if unknown:
        problems.append(f"ACS_TIMEOUTS: unknown keys {unknown}")
    default = AcsTimeouts()
    timeouts = AcsTimeouts(
        connect_seconds=values.get("connectSeconds", default.connect_seconds),
        read_seconds=values.get("readSeconds", default.read_seconds),
    )
    if timeouts.connect_seconds <= 0 or timeouts.read_seconds <= 0:
        problems.append("ACS_TIMEOUTS: connectSeconds and readSeconds must be positive")
    return timeouts


def _int_setting(env: Mapping[str, str], name: str, default: int, problems: list[str]) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        problems.append(f"{name}: must be a positive integer")
        return default
    return int(raw)


DEFAULT_RETENTION_DAYS = {"content": 7, "recipient": 30, "rows": 90}


def _senders(env: Mapping[str, str]) -> dict[Channel, tuple[str, ...]]:
    return {
        Channel.SMS: _csv(env.get("SMS_SENDERS")),
        Channel.EMAIL: _csv(env.get("EMAIL_SENDERS")),
        Channel.WHATSAPP: _csv(env.get("WHATSAPP_CHANNELS")),
    }


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Parse settings from `env` (default: the process environment); list every problem at once."""
    env = os.environ if env is None else env
    problems: list[str] = []
    _check_storage_and_acs(env, problems)
    rates = _json_numbers(env, "RATE_LIMITS", problems)
    prices = _json_numbers(env, "PRICE_TABLE", problems)
    slas = _json_numbers(env, "DELIVERY_SLA_MINUTES", problems)
    retention = _json_numbers(env, "RETENTION_DAYS", problems)
    settings = Settings(
        storage_connection_string=env.get("AzureWebJobsStorage") or None,
        storage_account_name=env.get("AzureWebJobsStorage__accountName") or None,
        acs_endpoint=env.get("ACS_ENDPOINT") or None,
        acs_connection_string=env.get("ACS_CONNECTION_STRING") or None,
        acs_resource_ids=frozenset(r.lower() for r in _csv(env.get("ACS_RESOURCE_IDS"))),
        senders=_senders(env),
        rate_limits=rates,
        sms_max_segments=_int_setting(env, "SMS_MAX_SEGMENTS", 10, problems),
        prices=_channel_map(prices, DEFAULT_PRICES),
        sla_minutes=_channel_map(slas, DEFAULT_SLA_MINUTES),
        retention_days={key: int(retention.get(key, days)) for key, days in DEFAULT_RETENTION_DAYS.items()},
        consent_hash_key=env.get("CONSENT_HASH_KEY", "").encode(),
        table_prefix=env.get("TABLE_PREFIX", "").strip() or "cm",
        send_queue=env.get("SEND_QUEUE", "").strip() or "outbound",
        appinsights_connection_string=env.get("APPLICATIONINSIGHTS_CONNECTION_STRING") or None,
        send_retry=_backoff(env, problems),
        acs_timeouts=_acs_timeouts(env, problems),
        trace_sampling_ratio=_ratio(env, "TRACE_SAMPLING_RATIO", problems),
        managed_identity_client_id=env.get("AZURE_CLIENT_ID", "").strip() or None,
        storage_service_uris=_service_uris(env),
        feed_topic_endpoint=env.get("FEED_TOPIC_ENDPOINT", "").strip() or None,
        feed_topic_key=env.get("FEED_TOPIC_KEY", "").strip() or None,
        feed_source=env.get("FEED_SOURCE", "").strip(),
        enforce_service_window=_service_window(env, problems),
    )
    if problems:
        raise ConfigurationError("invalid settings: " + "; ".join(problems))
    return settings


def _service_window(env: Mapping[str, str], problems: list[str]) -> bool:
    value = env.get("WHATSAPP_SERVICE_WINDOW", "").strip().lower() or "off"
    if value not in ("enforce", "off"):
        problems.append("WHATSAPP_SERVICE_WINDOW must be enforce or off")
    return value == "enforce"
