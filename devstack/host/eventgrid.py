"""The Event Grid webhook: `/runtime/webhooks/eventgrid?functionName=NAME`.

Why exact status codes matter: Event Grid retries on anything but 200-204 and gives up on 400, so the
code decides whether events are redelivered. Order and codes follow the extension
(`EventGridExtensionConfigProvider.ProcessAsync` + `HttpRequestProcessor`): unknown function -> 404;
OPTIONS -> 200 + `WebHook-Allowed-Origin`; `aeg-event-type` SubscriptionValidation -> 200
`{"validationResponse"}`; Notification -> one invocation per event, in parallel, 202 if all succeed
else 500 with the first error (the whole batch is redelivered); Unsubscribe -> 202; else -> 400.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from azure.functions import meta

from devstack.host.invoker import Executor, LoadedFunction

log = logging.getLogger(__name__)

PUBLIC_CLOUD_ORIGIN = "eventgrid.azure.net"
KNOWN_ORIGINS = frozenset(
    {
        PUBLIC_CLOUD_ORIGIN,
        "eventgrid.azure.us",
        "eventgrid.azure.eaglex.ic.gov",
        "eventgrid.azure.microsoft.scloud",
        "eventgrid.azure.cn",
    }
)


class EventGridWebhook:
    def __init__(self, functions: Mapping[str, LoadedFunction], executor: Executor) -> None:
        self._functions = functions
        self._executor = executor

    async def handle(self, request: web.Request) -> web.Response:
        name = request.query.get("functionName", "")
        function = self._functions.get(name)  # exact, case-sensitive match
        if function is None:
            log.info("cannot find function: '%s', available function names: [%s]", name, ", ".join(self._functions))
            return web.Response(status=404, text=f"cannot find function: '{name}'")
        if request.method == "OPTIONS":
            return web.Response(status=200, headers={"WebHook-Allowed-Origin": allowed_origin(request.headers)})
        event_type = request.headers.get("aeg-event-type", "").lower()
        if event_type == "subscriptionvalidation":
            return await self._validate(request, name)
        if event_type == "notification":
            return await self._notify(request, function)
        return web.Response(status=202 if event_type == "unsubscribe" else 400)

    async def _validate(self, request: web.Request, name: str) -> web.Response:
        code = validation_code(json.loads(await request.text()))
        log.info("perform handshake with eventGrid for function: %s", name)
        return web.json_response({"validationResponse": code})

    async def _notify(self, request: web.Request, function: LoadedFunction) -> web.Response:
        payload = json.loads(await request.text())
        events = payload if isinstance(payload, list) else [payload]
        results = await asyncio.gather(
            *(self._executor.execute(function, meta.Datum(json.dumps(event), "json"), {}) for event in events)
        )
        failed = next((result for result in results if not result.succeeded), None)
        if failed is not None:
            return web.Response(status=500, text=str(failed.error))
        return web.Response(status=202)


def validation_code(payload: Any) -> str:
    """Event Grid schema sends an array; CloudEvents sends an object whose `data` may be a JSON string."""
    if isinstance(payload, list):
        return str(payload[0]["data"]["validationCode"])
    data = payload["data"]
    if isinstance(data, str):
        data = json.loads(data)
    return str(data["validationCode"])


def allowed_origin(headers: Mapping[str, str]) -> str:
    origin = headers.get("WebHook-Request-Origin")
    return origin if origin in KNOWN_ORIGINS else PUBLIC_CLOUD_ORIGIN
