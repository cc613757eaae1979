"""Helpers for the runner tests: unique names, base64 producers, deadline polling, a tiny HTTP client."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueServiceClient

APPS = Path(__file__).parent / "apps"
T = TypeVar("T")


def unique(prefix: str) -> str:
    """A queue-safe name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def b64(text: str) -> str:
    """What a base64 producer (TextBase64EncodePolicy) puts on the wire."""
    return base64.b64encode(text.encode()).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def wait_for(probe: Callable[[], T | None], timeout: float = 15.0, interval: float = 0.1) -> T:
    """Poll until `probe` returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
    """A tiny HTTP client that returns error statuses instead of raising."""
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read())


def peek(service: QueueServiceClient, name: str) -> list[str]:
    try:
        return [m.content for m in service.get_queue_client(name).peek_messages(max_messages=32)]
    except ResourceNotFoundError:  # a queue that does not exist yet has nothing to peek
        return []
