"""A slow and a fast async queue function, for the graceful-shutdown tests.

Both record progress through one module-level async client that is built once and reused.
"""

import asyncio
import os

import azure.functions as func
from azure.storage.queue.aio import QueueClient

STORAGE = "AzureWebJobsStorage"
app = func.FunctionApp()
_client: QueueClient | None = None


async def _record(text: str) -> None:
    global _client  # one client per process, as real apps do
    if _client is None:
        _client = QueueClient.from_connection_string(os.environ[STORAGE], os.environ["RECORD_QUEUE"])
    await _client.send_message(text)


@app.queue_trigger(arg_name="msg", queue_name="%SLOW_QUEUE%", connection="AzureWebJobsStorage")
async def slow(msg: func.QueueMessage) -> None:
    await _record("started:slow")
    await asyncio.sleep(60)
    await _record("finished:slow")


@app.queue_trigger(arg_name="msg", queue_name="%FAST_QUEUE%", connection="AzureWebJobsStorage")
async def fast(msg: func.QueueMessage) -> None:
    await _record("started:fast")
    await asyncio.sleep(float(os.environ.get("FAST_SECONDS", "1.5")))
    await _record("finished:fast")
