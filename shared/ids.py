"""The ids the app derives from a message id or a request: pure functions, no I/O, no SDK.

Why one module: each id is a promise kept across processes and restarts (a crash-resend must carry the
same repeatability id, a redelivered request must map to the same ledger row), so each is computed in
one place, and services import them from here rather than from the ACS adapter that sends them.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid


def content_id(key: bytes, body: bytes) -> str:
    """The id of a request sent without one: its content is its identity, so a redelivery, a
    poisoned copy and a re-scheduled copy all map to the same ledger row, and a producer that posts
    the same body twice gets the same message. Keyed (the app's CONSENT_HASH_KEY): a plain digest of a
    templated one-time code could be reversed to the phone number by hashing every number, and the id
    is shown to API callers and operators."""
    digest = hmac.new(key, b"content-id\x00" + body.strip(), hashlib.sha256).hexdigest()
    return "h-" + digest[:40]


def repeatability_id(message_id: str, generation: int) -> str:
    """A stable id per (message, send generation): a crash-resend reuses it, an at-least-once retry
    past ACS's window moves to the next generation."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"contact-messages:{message_id}:{generation}"))


def operation_id(message_id: str) -> str:
    """Email Operation-Id: ACS wants a GUID, so a non-GUID message id maps to a stable uuid5."""
    try:
        return str(uuid.UUID(message_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"contact-messages:{message_id}"))
