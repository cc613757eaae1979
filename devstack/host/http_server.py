"""The runner's HTTP front: HTTP triggers under `/<routePrefix>/`, the Event Grid webhook, admin status.

Why one catch-all handler: route precedence (admin and runtime routes first, then function routes
ordered literal-before-parameter) and the host's 404-for-wrong-method behaviour are simpler to keep
right in one dispatcher than in aiohttp's router. Requests reach the function through the library's
own `httpTrigger` converter and responses come back through its `http` converter.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from azure.functions import meta

from devstack.host.eventgrid import EventGridWebhook
from devstack.host.invoker import Executor, InvocationResult, LoadedFunction
from devstack.host.keys import HostKeys, presented_key
from devstack.host.routes import RouteTemplate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpFunction:
    function: LoadedFunction
    route: RouteTemplate
    methods: frozenset[str] | None
    auth_level: str


class HttpFront:
    def __init__(
        self,
        http_functions: list[HttpFunction],
        webhook: EventGridWebhook,
        executor: Executor,
        keys: HostKeys,
        route_prefix: str,
        status: Callable[[], dict[str, Any]],
    ) -> None:
        self._functions = sorted(http_functions, key=lambda f: f.route.precedence)
        self._webhook = webhook
        self._executor = executor
        self._keys = keys
        self._prefix = [p for p in route_prefix.split("/") if p]
        self._status = status
        self._runner: web.AppRunner | None = None

    async def start(self, sock: socket.socket, shutdown_timeout: float) -> None:
        app = web.Application(client_max_size=100 * 1024 * 1024)  # the host's default request size limit
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        """Stop accepting connections; requests in flight get the shutdown timeout to finish."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        lowered = [p.lower() for p in parts]
        if lowered[:3] == ["admin", "host", "status"] and request.method == "GET":
            return web.json_response(self._status())
        if lowered[:2] == ["runtime", "webhooks"] and len(parts) >= 3:
            return await self._webhook_request(request, lowered[2])
        if lowered[: len(self._prefix)] == [p.lower() for p in self._prefix]:
            return await self._function_request(request, "/".join(parts[len(self._prefix) :]))
        return web.Response(status=404)

    async def _webhook_request(self, request: web.Request, extension: str) -> web.StreamResponse:
        if not self._keys.allows_webhook(presented_key(request.query, request.headers)):
            return web.Response(status=401)
        if extension != "eventgrid":
            return web.Response(status=404)
        return await self._webhook.handle(request)

    async def _function_request(self, request: web.Request, path: str) -> web.StreamResponse:
        found = self._match(request.method, path)
        if found is None:
            return web.Response(status=404)
        target, params = found
        if not self._keys.allows(target.auth_level, presented_key(request.query, request.headers)):
            return web.Response(status=401)
        datum = await request_datum(request, params)
        result = await self._executor.execute(target.function, datum, {})
        return http_response(result)

    def _match(self, method: str, path: str) -> tuple[HttpFunction, dict[str, str]] | None:
        for candidate in self._functions:
            if candidate.methods is not None and method.upper() not in candidate.methods:
                continue
            params = candidate.route.match(path)
            if params is not None:
                return candidate, params
        return None


async def request_datum(request: web.Request, params: Mapping[str, str]) -> meta.Datum:
    """The `http` datum the host sends the worker (method, url, headers, query, params, body)."""
    body = await request.read()
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    query: dict[str, str] = {}
    for name, value in request.query.items():
        query[name] = f"{query[name]},{value}" if name in query else value
    return meta.Datum(
        {
            "method": meta.Datum(request.method, "string"),
            "url": meta.Datum(str(request.url), "string"),
            "headers": {name: meta.Datum(value, "string") for name, value in headers.items()},
            "query": {name: meta.Datum(value, "string") for name, value in query.items()},
            "params": {name: meta.Datum(value, "string") for name, value in params.items()},
            "body": meta.Datum(body, "bytes"),
        },
        "http",
    )


def http_response(result: InvocationResult) -> web.Response:
    """Map the encoded `$return` to a response; a failed invocation is a bare 500, as in the host."""
    datum = result.return_value
    if not result.succeeded or datum is None:
        return web.Response(status=500)
    if datum.type == "string":
        return web.Response(status=200, text=str(datum.value))
    if datum.type == "bytes":
        return web.Response(status=200, body=datum.value, content_type="application/octet-stream")
    value = datum.value
    response = web.Response(status=int(value["status_code"].value), body=value["body"].value or b"")
    for name, header in value["headers"].items():
        response.headers[name] = str(header.value)
    for cookie in value.get("cookies") or []:
        for morsel in cookie.values():
            response.headers.add("Set-Cookie", morsel.OutputString())
    return response


def process_uptime_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
