"""`AcsAdminClient`: a small synchronous client for the admin API of an emulator in another process.

Why: the demo, the local Functions runner and benchmarks may start the emulator with
`python -m devstack.acs` and still need to inspect sends, inject faults or simulate inbound messages.
Standard library only (urllib), so it works anywhere the project's Python runs. Results are the
admin API's JSON (the same keys as the records' `to_json`).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

JsonObject = dict[str, Any]


class AdminApiError(RuntimeError):
    """The admin API answered with an error status."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"admin API returned {status}: {body}")
        self.status = status
        self.body = body


class AcsAdminClient:
    """Talks to `<endpoint>/admin/*` of a running emulator."""

    def __init__(self, endpoint: str, timeout: float = 10.0) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError("endpoint must be an http(s) URL, for example http://127.0.0.1:8765")
        self._base = endpoint.rstrip("/") + "/admin"
        self._timeout = timeout

    def health(self) -> JsonObject:
        result: JsonObject = self._call("GET", "/health")
        return result

    def sends(self, channel: str | None = None, *, with_content: bool = False) -> list[JsonObject]:
        query = {"channel": channel} if channel else {}
        if with_content:
            query["content"] = "true"
        return list(self._call("GET", "/sends", query=query))

    def duplicates(self) -> list[JsonObject]:
        return list(self._call("GET", "/duplicates"))

    def truth(self) -> list[JsonObject]:
        return list(self._call("GET", "/truth"))

    def events(self) -> list[JsonObject]:
        return list(self._call("GET", "/events"))

    def request_counts(self) -> dict[str, int]:
        result: dict[str, int] = self._call("GET", "/requests")
        return result

    def add_fault(self, kind: str, **options: Any) -> JsonObject:
        result: JsonObject = self._call("POST", "/faults", {"kind": kind, **options})
        return result

    def outage(self, seconds: float, retry_after: int | None = None, channel: str | None = None) -> JsonObject:
        """Every send endpoint (and email operation poll) of `channel`, or of all channels, answers 503
        for `seconds`, with `Retry-After` when given, then serves normally again."""
        return self.add_fault("503", seconds=seconds, retryAfter=retry_after, channel=channel)

    def faults(self) -> list[JsonObject]:
        return list(self._call("GET", "/faults"))

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def inbound(self, sender: str, to: str, message: str, channel: str = "sms") -> JsonObject:
        result: JsonObject = self._call(
            "POST", "/inbound", {"channel": channel, "from": sender, "to": to, "message": message}
        )
        return result

    def inbound_log(self) -> list[JsonObject]:
        return list(self._call("GET", "/inbound"))

    def reset(self) -> None:
        self._call("POST", "/reset")

    def config(self) -> JsonObject:
        result: JsonObject = self._call("GET", "/config")
        return result

    def configure(self, **changes: Any) -> JsonObject:
        """Change settings; keys as in the admin API (reportDelay, lateDelay, webhook, schema, casing, topic,
        maxEventsPerBatch, preferredBatchSizeInKilobytes, serviceWindow)."""
        result: JsonObject = self._call("PUT", "/config", changes)
        return result

    def set_webhook(self, url: str | None) -> JsonObject:
        return self.configure(webhook=url)

    def _call(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> Any:
        url = self._base + path + (f"?{urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) checked above
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise AdminApiError(exc.code, exc.read().decode("utf-8", "replace")) from exc
        return json.loads(raw) if raw else None
