"""Translate azure-core exceptions into the application's two branches, in one place."""

from __future__ import annotations

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared.errors import ContactMessagesError, SendRejected, Throttled, TransientError

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
DEFAULT_RETRY_AFTER = 5.0


def retry_after_seconds(exc: HttpResponseError) -> float:
    """Retry-After from the response (seconds or ms header), else a sane default."""
    response = exc.response
    if response is None:
        return DEFAULT_RETRY_AFTER
    headers = getattr(response, "headers", {})
    for header, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(header)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return DEFAULT_RETRY_AFTER


def map_provider_error(exc: Exception) -> ContactMessagesError:
    """Classify an ACS SDK exception: 429 throttled, network/408/5xx/auth transient, other 4xx permanent.

    Authentication failures are transient on purpose: a wrong key or a missing role is fixed by an
    operator, after which the dead-lettered messages can be replayed; marking every message Failed
    would lose them.
    """
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return TransientError(f"network error: {type(exc).__name__}")
    if isinstance(exc, ClientAuthenticationError):
        return TransientError("provider refused our credentials (check the key or role assignment)")
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        code = str(getattr(exc.error, "code", None) or exc.reason or status)
        if status == 429:
            return Throttled(retry_after_seconds(exc))
        if status in _TRANSIENT_STATUS or status >= 500 or status in {401, 403}:
            return TransientError(f"provider answered {status} {code}")
        return SendRejected(code, f"provider answered {status}")
    return TransientError(f"unexpected provider error {type(exc).__name__}")
