"""ACS SDK errors map to our branches at the adapter, with whether ACS may have acted on the request."""

from __future__ import annotations

import aiohttp
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.adapters.errors import map_provider_error
from shared.errors import AccessDenied, SendRejected, Throttled, TransientError


class _Response:
    """The parts of an azure-core HTTP response that HttpResponseError reads."""

    def __init__(self, status: int) -> None:
        self.status_code = status
        self.reason = "Reason"
        self.headers: dict[str, str] = {}
        self.request = None

    def text(self, encoding: str | None = None) -> str:
        return '{"error": {"code": "Code", "message": "m"}}'


@settings(max_examples=200, deadline=None)
@given(st.integers(400, 599))
def test_every_error_status_has_one_branch(status: int) -> None:
    """403 is acs-forbidden, 429 throttled, 401/408/5xx transient, other 4xx permanent; only the answers
    that refuse a request before handling it (401, 403, 408, 429, 503) say it was not sent."""
    mapped = map_provider_error(HttpResponseError(response=_Response(status)))
    if status == 403:
        assert isinstance(mapped, AccessDenied) and str(mapped).startswith("acs-forbidden")
    elif status == 429:
        assert isinstance(mapped, Throttled)
    elif status in {401, 408} or status >= 500:
        assert type(mapped) is TransientError
    else:
        assert isinstance(mapped, SendRejected)
    if isinstance(mapped, TransientError):
        assert mapped.may_have_sent == (status not in {401, 403, 408, 429, 503})


def test_a_credential_failure_is_transient_and_unsent() -> None:
    """Microsoft Entra ID not answering (no token) means no request reached ACS."""
    mapped = map_provider_error(ClientAuthenticationError("no token"))
    assert type(mapped) is TransientError and not mapped.may_have_sent


def test_only_a_connection_never_made_counts_as_unsent() -> None:
    """azure-core raises ServiceRequestError even when the server dropped the connection after reading the
    request; only a failed connect proves nothing was sent."""
    refused = ServiceRequestError("refused", error=aiohttp.ClientConnectorError.__new__(aiohttp.ClientConnectorError))
    dropped = ServiceRequestError("dropped", error=aiohttp.ServerDisconnectedError())
    assert not map_provider_error(refused).may_have_sent  # type: ignore[attr-defined]
    assert map_provider_error(dropped).may_have_sent  # type: ignore[attr-defined]
    assert map_provider_error(ServiceResponseError("garbled")).may_have_sent  # type: ignore[attr-defined]
