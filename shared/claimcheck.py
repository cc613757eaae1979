"""Claim check: a request too large for a queue message travels as a blob and a small reference to it.

Why one module: the producer client, the HTTP intake and the send path all write or follow these
references, and a reference is trusted only in the exact shape written here (see `parse_payload_ref`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from shared.errors import FieldError, ValidationFailed
from shared.models import PAYLOAD_NAME_PATTERN
from shared.validation import load_json


def payload_blob_name(message_id: str, payload: str) -> str:
    """Where a request too large for a queue message is kept: named by its content as well as its id,
    so that a second, different request under the same id never overwrites the first one's text.
    Producers compute it without any secret, so the digest is a plain one."""
    return f"{message_id}/{hashlib.sha256(payload.encode()).hexdigest()[:32]}.json"


def reference_body(message_id: str, payload_ref: str) -> str:
    """The small queue message that stands for a request kept in blob storage."""
    return json.dumps({"schemaVersion": 1, "id": message_id, "payloadRef": payload_ref})


@dataclass(frozen=True)
class PayloadRef:
    """A claim-check reference as the client and the intake write it (`reference_body`)."""

    message_id: str
    name: str

    def holds(self, text: str) -> bool:
        """Is `text` the request this reference was written for? The name carries its digest
        (`payload_blob_name`), so a blob swapped under the name is refused."""
        digest = hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()[:32]
        return self.name == f"{self.message_id}/{digest}.json"


REFERENCE_KEYS = frozenset({"schemaVersion", "id", "payloadRef"})
BAD_REFERENCE = (
    "is not a payload reference this app wrote: expected exactly schemaVersion 1, id and "
    "payloadRef '<id>/<sha-256 prefix>.json'"
)


def _is_reference(data: dict[str, Any]) -> bool:
    version, message_id, name = data.get("schemaVersion"), data.get("id"), data.get("payloadRef")
    return (
        set(data) == REFERENCE_KEYS
        and type(version) is int
        and version == 1
        and isinstance(message_id, str)
        and isinstance(name, str)
        and re.fullmatch(PAYLOAD_NAME_PATTERN, name) is not None
        and name.startswith(message_id + "/")
    )


def parse_payload_ref(body: bytes) -> PayloadRef | None:
    """The reference in a claim-check queue message; None when `body` is no reference at all. Only the
    exact shape the client and the intake write is followed, so a reference can never name another
    container, a parent path or another message's blob: in Azure the app's identity may read every
    container of the account, Event Grid's dead-lettered events included."""
    try:
        data = load_json(body)
    except ValidationFailed:
        return None
    if not isinstance(data, dict) or "payloadRef" not in data:
        return None
    if not _is_reference(data):
        raise ValidationFailed([FieldError("payloadRef", BAD_REFERENCE)])
    return PayloadRef(str(data["id"]), str(data["payloadRef"]))
