"""Queue scenarios for the runner tests: always failing, succeeding with outputs, recording raw input.

Invocations are recorded with the SDK directly, because output bindings are dropped on failure.
"""

import json
import os
import typing

import azure.functions as func
from azure.storage.queue import QueueClient

STORAGE = "AzureWebJobsStorage"
app = func.FunctionApp()


def _record(function: str, msg: func.QueueMessage) -> None:
    client = QueueClient.from_connection_string(os.environ[STORAGE], os.environ["RECORD_QUEUE"])
    with client:
        client.send_message(
            json.dumps({"function": function, "dequeue_count": msg.dequeue_count, "body": msg.get_body().decode()})
        )


@app.queue_trigger(arg_name="msg", queue_name="%FAIL_QUEUE%", connection="AzureWebJobsStorage")
def always_fails(msg: func.QueueMessage) -> None:
    _record("always_fails", msg)
    raise RuntimeError("simulated failure")


@app.queue_trigger(arg_name="msg", queue_name="%OK_QUEUE%", connection="")
@app.queue_output(arg_name="single", queue_name="%OUT_QUEUE%", connection="Storage")
@app.queue_output(arg_name="many", queue_name="%OUT_QUEUE%", connection="AzureWebJobsStorage")
def succeeds(msg: func.QueueMessage, single: func.Out[str], many: func.Out[typing.List[str]]) -> None:  # noqa: UP006 - the library rejects list[str]
    body = msg.get_body().decode()
    single.set(f"single:{body}")
    many.set([f"many-1:{body}", f"many-2:{body}"])


@app.queue_trigger(arg_name="msg", queue_name="%RAW_QUEUE%", connection="AzureWebJobsStorage")
def records_raw(msg: func.QueueMessage) -> None:
    _record("records_raw", msg)


@app.queue_trigger(arg_name="msg", queue_name="%MISSING_QUEUE%", connection="AzureWebJobsStorage")
def never_triggered(msg: func.QueueMessage) -> None:
    _record("never_triggered", msg)
