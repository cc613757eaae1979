"""Translate azure-core exceptions into the application's two branches, in one place."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
)

from shared.errors import AccessDenied, ContactMessagesError, SendRejected, Throttled, TransientError

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
# Answers that say the request was refused before it was handled: a retry cannot duplicate it.
_UNSENT_STATUS = {401, 403, 408, 429, 503}
DEFAULT_RETRY_AFTER = 5.0


def retry_after_seconds(exc: HttpResponseError) -> float:
    """Retry-After from the response (seconds or ms header), else a sane default."""
    response = exc.response
    if response is None:
        return DEFAULT_RETRY_AFTER
    return retry_after_from(getattr(response, "headers", {}))


def retry_after_from(headers: Mapping[str, str]) -> float:
    """Retry-After from response headers (seconds or ms), else a sane default."""
    for header, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(header)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return DEFAULT_RETRY_AFTER


def map_provider_error(exc: Exception) -> ContactMessagesError:
    """Classify an ACS SDK exception: 429 throttled, 403 access denied, network/408/5xx/401 transient,
    other 4xx permanent; and say whether ACS may have acted on the request before it failed.

    - azure-core documents `ServiceRequestError` as "No request was sent", but its aiohttp transport
      raises it for every aiohttp `ClientError`, including a server that closes the connection after
      reading the request (azure/core/pipeline/transport/_aiohttp.py). So only a connection that was never
      made (`ClientConnectorError`, a connect timeout) counts as unsent; every other network error may
      have reached ACS.
    - A 401, 403, 408, 429 or 503 means the request was refused before it was handled (RFC 9110 §15.5.2,
      §15.5.4, §15.5.9, §15.6.4; RFC 6585 §4). A 500, 502 or 504 may come after the service acted on it.
    - 403 is `AccessDenied` (`acs-forbidden`), not a plain retry: the identity lacks a role on the ACS
      resource, or a new assignment has not taken effect yet (Azure RBAC troubleshooting: role changes can take
      up to 30 minutes, https://learn.microsoft.com/azure/role-based-access-control/troubleshooting). No message is at
      fault, so none is Failed; they are held with a long backoff and an alert fires.
    - 401 and credential failures (Microsoft Entra ID unreachable, a key being rotated) are transient.
    """
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return TransientError(f"network error: {type(exc).__name__}", may_have_sent=not _never_connected(exc))
    status = (exc.status_code or 0) if isinstance(exc, HttpResponseError) else 0
    if status == 403:
        return AccessDenied(f"provider answered 403 {_code(exc)} (check the identity's role on the ACS resource)")
    if isinstance(exc, ClientAuthenticationError):
        return TransientError("provider refused our credentials (check the key or identity)", may_have_sent=False)
    if isinstance(exc, HttpResponseError):
        if status == 429:
            return Throttled(retry_after_seconds(exc))
        if status in _TRANSIENT_STATUS or status >= 500 or status == 401:
            unsent = status in _UNSENT_STATUS
            return TransientError(f"provider answered {status} {_code(exc)}", may_have_sent=not unsent)
        return SendRejected(_code(exc), f"provider answered {status}")
    return TransientError(f"unexpected provider error {type(exc).__name__}")


def _never_connected(exc: Exception) -> bool:
    """True when the request cannot have left this process: no connection was ever established."""
    if isinstance(exc, ServiceRequestTimeoutError):
        return True  # aiohttp's connect timeout (ConnectionTimeoutError)
    inner = getattr(exc, "inner_exception", None) or exc.__cause__
    return isinstance(exc, ServiceRequestError) and isinstance(inner, aiohttp.ClientConnectorError)


def _code(exc: Exception) -> str:
    if not isinstance(exc, HttpResponseError):
        return type(exc).__name__
    return str(getattr(exc.error, "code", None) or exc.reason or exc.status_code)
