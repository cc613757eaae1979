"""Publisher authentication as a custom topic checks it: `aeg-sas-key`, `aeg-sas-token`, or a bearer token.

Why: `EventGridPublisherClient` sends the key in `aeg-sas-key` (AzureKeyCredential), a signed token in
`aeg-sas-token` (AzureSasCredential, made by `azure.eventgrid.generate_sas`), or `Authorization:
Bearer` (a token credential; in Azure the app's managed identity with "EventGrid Data Sender"). See
https://learn.microsoft.com/azure/event-grid/authenticate-with-access-keys-shared-access-signatures.
The SAS token is `r=<resource>&e=<expiry>&s=<signature>` with the signature an HMAC-SHA256, keyed by the
decoded access key, over `r=...&e=...` exactly as the SDK encoded them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import parse_qs, unquote

MISSING = (
    "Request must contain one of the following authorization signature: aeg-sas-token, aeg-sas-key, "
    "or an Authorization header with a bearer token."
)


def refusal(headers: Mapping[str, str], access_key: str, allow_bearer: bool, host: str) -> str | None:
    """Why the request is not authorized (the message of a 401), or None when it is."""
    if "aeg-sas-key" in headers:
        if hmac.compare_digest(headers["aeg-sas-key"].encode(), access_key.encode()):
            return None
        return f"The request authorization key is not authorized for {host.upper()}."
    if "aeg-sas-token" in headers:
        return _token_refusal(headers["aeg-sas-token"], access_key)
    authorization = headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        if allow_bearer and len(authorization) > len("Bearer "):
            return None
        return "The bearer token is not authorized for this topic (start the local topic with --allow-bearer)."
    return MISSING


def _token_refusal(token: str, access_key: str) -> str | None:
    unsigned, separator, signature = token.rpartition("&s=")
    fields = parse_qs(unsigned)
    if not separator or "r" not in fields or "e" not in fields:
        return "The aeg-sas-token is malformed: it must be r=<resource>&e=<expiry>&s=<signature>."
    expected = base64.b64encode(hmac.new(base64.b64decode(access_key), unsigned.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(unquote(signature).encode(), expected):
        return "The aeg-sas-token signature does not match the topic's key."
    try:
        expiry = datetime.fromisoformat(fields["e"][0])
    except ValueError:
        return "The aeg-sas-token expiry is not a date."
    if (expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC)) < datetime.now(UTC):
        return "The aeg-sas-token has expired."
    return None
