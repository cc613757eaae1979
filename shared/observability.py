"""Structured log records and counters: the one vocabulary that logs, the workbook and alerts share.

Why: operators query Application Insights by `customDimensions.event` and the dimensions below, so
every record goes through `emit` with a declared event name, and tests can check that the workbook
and alert queries only reference names declared here. Values are ids, channels, statuses and masked
recipients; never content or raw addresses.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Final

# Event names (customDimensions.event). Counters use the `metric` event with `metric_name`.
EVENTS: Final = frozenset(
    {
        "message.accepted",
        "message.sending",
        "message.sent",
        "message.rejected",
        "message.suppressed",
        "message.expired",
        "message.unknown",
        "message.dead_lettered",
        "message.throttled",
        "message.retry_scheduled",
        "message.forbidden",
        "message.paused",
        "message.duplicate_skipped",
        "message.id_reused",
        "message.fallback",  # a message ended in a way its request falls back on: its alternative was created
        "event.recorded",
        "event.duplicate",
        "event.orphaned",
        "event.ignored",
        "event.rejected",
        "consent.changed",
        "reconcile.summary",
        "retention.summary",
        "operator.action",
        "feed.publish_failed",  # the status feed could not publish (the reconcile sweep retries)
        "metric",
    }
)

# Counter names (customDimensions.metric_name).
METRICS: Final = frozenset(
    {
        "sent",
        "rejected",
        "suppressed",
        "throttled",
        "dead_lettered",
        "expired",
        "unknown",
        "delivered",
        "failed",
        "events_recorded",
        "events_duplicate",
        "events_ignored",
        "events_orphaned",
        "engagement",
        "poison_depth",
        "cost_estimate",
        "id_reused",
        "send_retry",  # a send failed transiently and was re-enqueued with backoff
        "acs_forbidden",  # ACS answered 403 to the app's identity (alert: acs-forbidden)
        "delivery_latency_ms",  # value: ms from the send to its Delivered or Read report, once a message
        "feed_published",  # value: status-feed events published (issue 17)
        "feed_publish_failed",  # value: status-feed events whose publish failed (the sweep retries them)
        "feed_republished",  # value: status-feed events the reconcile sweep found unpublished and sent
        "send_now_failed",  # a high-priority POST's own send raised; its lane copy retries it (dimension reason)
        "fallback",  # a fallback message created in place of one that ended (dimension reason: the trigger)
    }
)

# Dimension names allowed on records (customDimensions.<name>).
DIMENSIONS: Final = frozenset(
    {
        "event",
        "metric_name",
        "value",
        "message_id",
        "channel",
        "status",
        "attempt",
        "recipient",
        "sender",
        "reason",
        "provider_message_id",
        "event_type",
        "latency_ms",
        "retry_after",
        "count",
        "operator",
        "action",
    }
)


# The dimensions bound for the work in hand (one message, one event): every record emitted inside
# `log_context` carries them, so call sites name an id once, where the work starts, not on every record.
_BOUND: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar(
    "log_context", default=MappingProxyType({})
)


@contextmanager
def log_context(**dims: object) -> Iterator[None]:
    """Bind `dims` (declared DIMENSIONS) to every record emitted inside the block, in this task and the
    calls it awaits. Nested blocks add to (and may override) the outer ones."""
    _check_dimensions(dims)
    token = _BOUND.set({**_BOUND.get(), **{k: v for k, v in dims.items() if v is not None}})
    try:
        yield
    finally:
        _BOUND.reset(token)


def detached_context() -> contextvars.Context:
    """A copy of the current context without bound log dimensions, for a background task that outlives
    the work that started it (asyncio copies the creator's context into a task)."""
    context = contextvars.copy_context()
    context.run(_BOUND.set, {})
    return context


def emit(logger: logging.Logger, event: str, text: str, **dims: object) -> None:
    """Log `text` at INFO (free of PII) with `event`, the bound context and `dims` as custom dimensions;
    the message ends with the dimensions as `name=value`, so a plain-text log reads the same."""
    _emit(logging.INFO, logger, event, text, dims)


def emit_warning(logger: logging.Logger, event: str, text: str, **dims: object) -> None:
    """Like `emit`, at WARNING: something an operator should look at."""
    _emit(logging.WARNING, logger, event, text, dims)


def _check_dimensions(dims: Mapping[str, object]) -> None:
    unknown = set(dims) - DIMENSIONS
    if unknown:
        raise ValueError(f"undeclared dimensions {sorted(unknown)}")


def _emit(level: int, logger: logging.Logger, event: str, text: str, dims: Mapping[str, object]) -> None:
    if event not in EVENTS:
        raise ValueError(f"undeclared event {event!r}")
    _check_dimensions(dims)
    if not logger.isEnabledFor(level):
        return
    shown = {**_BOUND.get(), **{k: v for k, v in dims.items() if v is not None}}
    message = text.replace("%", "%%") + "".join(f" {name}=%s" for name in shown)
    logger.log(level, message, *shown.values(), extra={"event": event, **shown})


def count(logger: logging.Logger, metric: str, value: float = 1, **dims: object) -> None:
    """Record a counter increment as a structured `metric` record."""
    if metric not in METRICS:
        raise ValueError(f"undeclared metric {metric!r}")
    emit(logger, "metric", "metric", metric_name=metric, value=value, **dims)
