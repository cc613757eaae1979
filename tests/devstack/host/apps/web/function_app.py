"""HTTP and Event Grid functions for the runner tests."""

import asyncio
import json
import logging
import os

import azure.functions as func
from azure.storage.queue.aio import QueueClient

STORAGE = "AzureWebJobsStorage"
log = logging.getLogger(__name__)
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
_client: QueueClient | None = None


@app.route(route="items/{item_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def get_item(req: func.HttpRequest) -> func.HttpResponse:
    body = {"item_id": req.route_params.get("item_id"), "q": req.params.get("q")}
    return func.HttpResponse(json.dumps(body), status_code=201, mimetype="application/json")


@app.route(route="secure")
def secure(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("secret")


@app.route(route="enqueue", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def enqueue(req: func.HttpRequest) -> func.HttpResponse:
    global _client  # built once per process and reused, like real apps' clients
    if _client is None:
        _client = QueueClient.from_connection_string(os.environ[STORAGE], os.environ["ENQUEUE_QUEUE"])
    await _client.send_message(req.get_body().decode())
    return func.HttpResponse(json.dumps({"client": id(_client)}), mimetype="application/json")


@app.event_grid_trigger(arg_name="event")
def record_event(event: func.EventGridEvent) -> None:
    log.info("record_event id=%s", event.id)
    if (event.get_json() or {}).get("fail"):
        raise RuntimeError(f"simulated failure for {event.id}")


@app.route(route="whoami", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def whoami(req: func.HttpRequest) -> func.HttpResponse:
    """Which process ran this invocation (the runner itself, or one of its worker processes)."""
    return func.HttpResponse(json.dumps({"pid": os.getpid()}), mimetype="application/json")


@app.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise ValueError("boom from the function")


@app.route(route="crash", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def crash(req: func.HttpRequest) -> func.HttpResponse:
    """Ends the process running it: only called with worker processes, where it ends one worker."""
    os._exit(3)


@app.route(route="logs", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def logs(req: func.HttpRequest) -> func.HttpResponse:
    """Logs one line per level, for the host.json logLevel tests."""
    log.info("information from the logs function")
    log.warning("warning from the logs function")
    return func.HttpResponse("logged")


@app.route(route="loop", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def loop(req: func.HttpRequest) -> func.HttpResponse:
    """The class of the event loop async functions run on."""
    running = asyncio.get_running_loop()
    return func.HttpResponse(json.dumps({"loop": f"{type(running).__module__}.{type(running).__qualname__}"}))
