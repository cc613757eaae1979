"""A webhook subscriber of the status feed for the demo: it agrees to Event Grid's CloudEvents
validation handshake and keeps every event delivered to it, as a downstream system would receive them.

Why its own small server: `make run` shows what a subscriber of the local topic received, deduplicated
by event id and ordered by sequence, as docs/status-feed.md tells subscribers to do.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FeedSink:
    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_OPTIONS(self) -> None:
                self.send_response(200)
                self.send_header("WebHook-Allowed-Origin", self.headers.get("WebHook-Request-Origin", "*"))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"[]")
                with sink._lock:
                    sink._events.extend(body if isinstance(body, list) else [body])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="feed-sink", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/feed"

    def start(self) -> FeedSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def received(self) -> int:
        with self._lock:
            return len(self._events)

    def histories(self) -> dict[str, list[dict[str, Any]]]:
        """Per message: its events deduplicated by id, in sequence order (what a subscriber applies)."""
        with self._lock:
            unique = {event["id"]: event for event in self._events}
        per_message: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in unique.values():
            per_message[event["data"]["messageId"]].append(event)
        return {m: sorted(events, key=lambda e: int(e["data"]["sequence"])) for m, events in per_message.items()}
