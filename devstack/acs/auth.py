"""ACS request authentication: the HMAC-SHA256 scheme of the official SDKs, and optional bearer tokens.

Why verify at all: a wrong access key must fail locally exactly as it fails in Azure (401, which the
SDKs turn into `ClientAuthenticationError`), otherwise configuration bugs only show up in production.
The string-to-sign is rebuilt from the raw request-target and the Host header (acs-contract §2.3).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

DENIED = "Denied by the resource provider."
HASH_MISMATCH = "Request 'x-ms-content-sha256' differs from generated content hash."
HMAC_PREFIX = "HMAC-SHA256 "
SIGNED_HEADERS = "x-ms-date;host;x-ms-content-sha256"


@dataclass(frozen=True)
class AuthPolicy:
    """What the emulator accepts: the access key, optional bearer tokens, the trailing-slash leniency."""

    access_key: str
    allow_bearer: bool = False
    lenient_host: bool = False
    max_clock_skew: float = 900.0


@dataclass(frozen=True)
class SignedRequest:
    """The parts of an HTTP request that the signature covers."""

    method: str
    target: str
    host: str
    headers: dict[str, str]
    body: bytes


def content_hash(body: bytes) -> str:
    """Base64 SHA-256 of the body, as the SDK puts it in `x-ms-content-sha256`."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def sign(access_key: str, method: str, target: str, host: str, date: str, body_hash: str) -> str:
    """The base64 HMAC-SHA256 signature the SDK computes for one request."""
    to_sign = f"{method.upper()}\n{target}\n{date};{host};{body_hash}"
    secret = base64.b64decode(access_key)
    digest = hmac.new(secret, to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_headers(access_key: str, method: str, target: str, host: str, body: bytes) -> dict[str, str]:
    """Headers that authenticate a hand-built request exactly as the SDK would (for raw clients and tests)."""
    date = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S ") + "GMT"
    body_hash = content_hash(body)
    signature = sign(access_key, method, target, host, date, body_hash)
    return {
        "x-ms-date": date,
        "x-ms-content-sha256": body_hash,
        "Authorization": f"{HMAC_PREFIX}SignedHeaders={SIGNED_HEADERS}&Signature={signature}",
    }


def check(policy: AuthPolicy, request: SignedRequest) -> str | None:
    """None when the request is authentic, otherwise the 401 message to return."""
    authorization = request.headers.get("authorization", "")
    if authorization.startswith("Bearer "):
        return None if policy.allow_bearer and len(authorization) > len("Bearer ") else DENIED
    if not authorization.startswith(HMAC_PREFIX):
        return DENIED
    body_hash = request.headers.get("x-ms-content-sha256", "")
    if body_hash != content_hash(request.body):
        return HASH_MISMATCH
    date = request.headers.get("x-ms-date", "")
    if not _date_is_fresh(date, policy.max_clock_skew):
        return DENIED
    return None if _signature_matches(policy, request, date, body_hash) else DENIED


def _signature_matches(policy: AuthPolicy, request: SignedRequest, date: str, body_hash: str) -> bool:
    given = _signature_of(request.headers.get("authorization", ""))
    if given is None:
        return False
    # The trailing-slash trap (§2.3): SmsClient("http://h:p/") signs "h:p/" while sending Host "h:p".
    hosts = [request.host, request.host + "/"] if policy.lenient_host else [request.host]
    for host in hosts:
        try:
            expected = sign(policy.access_key, request.method, request.target, host, date, body_hash)
        except ValueError:
            return False
        if hmac.compare_digest(expected, given):
            return True
    return False


def _signature_of(authorization: str) -> str | None:
    fields = dict(part.split("=", 1) for part in authorization[len(HMAC_PREFIX) :].split("&") if "=" in part)
    if fields.get("SignedHeaders", "").lower() != SIGNED_HEADERS:
        return None
    return fields.get("Signature")


def _date_is_fresh(date: str, max_skew: float) -> bool:
    try:
        sent = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return False
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    return abs((datetime.now(UTC) - sent).total_seconds()) <= max_skew
