"""The log context of one request: its id, channel and masked recipient (never its content)."""

from __future__ import annotations

import contextlib

from shared.observability import log_context
from shared.privacy import mask
from shared.validation import CheckedRequest


def about(checked: CheckedRequest) -> contextlib.AbstractContextManager[None]:
    """Bind the request's id, channel and masked recipient to every record emitted while it is handled."""
    return log_context(message_id=checked.message_id, channel=checked.channel.value, recipient=mask(checked.request.to))
