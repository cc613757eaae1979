"""Structured records about one request, with its ids and masked recipient (never its content)."""

from __future__ import annotations

import logging

from shared.observability import emit
from shared.privacy import mask
from shared.validation import CheckedRequest


def emit_about(log: logging.Logger, checked: CheckedRequest, event: str, text: str, **dims: object) -> None:
    """A structured record about one request: its id, channel and masked recipient, plus `dims`."""
    recipient = mask(checked.request.to)
    emit(
        log,
        event,
        f"{text} message_id=%s channel=%s recipient=%s",
        checked.message_id,
        checked.channel,
        recipient,
        message_id=checked.message_id,
        channel=checked.channel.value,
        recipient=recipient,
        **dims,
    )
