"""Send requests as producers write them, for tests of every kind (one place, so they stay alike)."""

from __future__ import annotations

import json
from typing import Any


def sms(message_id: str, to: str = "+14255550100", text: str | None = None, **extra: Any) -> bytes:
    body = {"id": message_id, "channel": "sms", "to": to, "content": {"text": text or f"code for {message_id}"}}
    return json.dumps({**body, **extra}).encode()


def email(message_id: str, to: str = "ann@example.com", **extra: Any) -> bytes:
    body = {"id": message_id, "channel": "email", "to": to, "content": {"subject": "Hi", "text": f"id {message_id}"}}
    return json.dumps({**body, **extra}).encode()


def whatsapp(message_id: str, to: str = "+14255550100", **extra: Any) -> bytes:
    body = {"id": message_id, "channel": "whatsapp", "to": to, "content": {"text": f"wa {message_id}"}}
    return json.dumps({**body, **extra}).encode()
