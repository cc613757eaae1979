"""Contact Messages: the Azure Functions app. Triggers and bindings only.

Each handler decodes its trigger, calls one service from `shared`, and maps the result. Nothing
here does I/O at import, and `shared` itself is imported on the first invocation: indexing the app
(cold start) costs little more than importing azure.functions. Services are built once and reused.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import azure.functions as func

if TYPE_CHECKING:
    from shared.runtime import Services

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
logging.getLogger("azure").setLevel(logging.WARNING)


@app.function_name(name="send_message")
@app.queue_trigger(arg_name="msg", queue_name="%SEND_QUEUE%", connection="AzureWebJobsStorage")
async def send_message(msg: func.QueueMessage) -> None:
    """Send one request from the send queue (bad input is recorded, transient errors raise)."""
    from shared.services.sending import QueueDelivery

    svc = await _services()
    await svc.sending.handle(QueueDelivery(msg.get_body(), msg.id or "", msg.dequeue_count or 1))


@app.function_name(name="dead_letter")
@app.queue_trigger(arg_name="msg", queue_name="%SEND_QUEUE%-poison", connection="AzureWebJobsStorage")
async def dead_letter(msg: func.QueueMessage) -> None:
    """Record a poisoned send request as DeadLettered, with its payload kept for replay."""
    svc = await _services()
    await svc.dead_letters.record(msg.get_body(), msg.id or "", "the host gave up after maxDequeueCount attempts")


@app.function_name(name="record_event")
@app.event_grid_trigger(arg_name="event")
async def record_event(event: func.EventGridEvent) -> None:
    """Record one ACS event from Event Grid (either schema). Raises only for storage failures."""
    svc = await _services()
    await svc.events.record(_event_dict(event))


@app.function_name(name="reconcile")
@app.timer_trigger(arg_name="timer", schedule="%RECONCILE_SCHEDULE%", run_on_startup=False, use_monitor=True)
async def reconcile(timer: func.TimerRequest) -> None:
    """Reconcile sent against reported (singleton: the host holds a lease per timer)."""
    svc = await _services()
    await svc.reconcile.run()


@app.function_name(name="retention")
@app.timer_trigger(arg_name="timer", schedule="%RETENTION_SCHEDULE%", run_on_startup=False, use_monitor=True)
async def retention(timer: func.TimerRequest) -> None:
    """Purge content, then recipients, then rows, each when its retention period ends."""
    svc = await _services()
    await svc.retention.run()


@app.function_name(name="submit_message")
@app.route(route="messages", methods=["POST"])
async def submit_message(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/messages: validate now, 202 with a Location, 400 with field errors, 409 when the id
    already belongs to a different request."""
    svc = await _services()
    result = await svc.intake.submit(req.get_body())
    if result.conflict:
        body = {"error": "id already used", "errors": [e.as_dict() for e in result.errors]}
        return _json(body, 409, {"Location": f"/api/messages/{result.message_id}"})
    if not result.accepted:
        body = {"error": "invalid send request", "errors": [e.as_dict() for e in result.errors]}
        return _json(body, 400)
    location = f"/api/messages/{result.message_id}"
    return _json({"id": result.message_id, "status": "Accepted", "location": location}, 202, {"Location": location})


@app.function_name(name="get_message")
@app.route(route="messages/{id}", methods=["GET"])
async def get_message(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/messages/{id}: status and history; masked recipient, never content."""
    from shared.services.intake import status_view

    svc = await _services()
    view = await status_view(svc.storage.table(svc.names.messages), req.route_params["id"])
    return _json(view, 200) if view else _json({"error": "no such message"}, 404)


async def _services() -> Services:
    from shared.runtime import services  # lazy: keeps indexing (cold start) cheap

    return await services()


def _json(body: object, status: int, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json", headers=headers)


def _event_dict(event: func.EventGridEvent) -> dict[str, object]:
    """The delivered event as a plain dict, in either schema.

    Why no `func.CloudEvent`: that class exists only from azure-functions 1.25, and on Python <= 3.12
    the worker imports its own bundled copy of azure-functions ahead of the app's unless
    PYTHON_ISOLATE_WORKER_DEPENDENCIES is set ("Python Packages Loading Order and Sys Path", the
    worker's wiki); the worker that first ran Python 3.11 bundled 1.15. So the schema is told by an
    attribute, read with getattr: a library that knows CloudEvents hands one over with `specversion`;
    every version has the Event Grid fields below. (An older library decodes a CloudEvents delivery
    into an EventGridEvent without `type`, `source` and `time`, so that schema needs a newer library
    actually loaded; infra subscribes with the Event Grid schema.)
    """
    raw: Any = event
    if getattr(raw, "specversion", None) is not None:
        return {
            "specversion": raw.specversion,
            "id": raw.id,
            "source": raw.source,
            "type": raw.type,
            "subject": raw.subject,
            "time": raw.time.isoformat() if raw.time else None,
            "data": raw.get_json(),
        }
    return {
        "id": event.id,
        "topic": event.topic,
        "subject": event.subject,
        "eventType": event.event_type,
        "eventTime": event.event_time.isoformat() if event.event_time else None,
        "data": event.get_json(),
    }
