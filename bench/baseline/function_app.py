"""The baseline the benchmarks compare against: what a user would otherwise deploy.

It follows Microsoft's az-campaign-mailer sample (yogeshmo/az-campaign-mailer): a queue-triggered
function sends each message with the synchronous ACS SDK clients and, for email, waits on the SDK's
poller until the operation ends; an Event Grid-triggered function upserts one status row per event.
There is no ledger, no claim, no deduplication and no consent check, so a redelivered queue message is
sent again and a late event overwrites a newer status: that is the pattern being measured, not a
design to copy. Two changes from the sample, neither of which changes the work done: SMS and WhatsApp
are sent as well as email (the benchmark's workload mixes all three), and rows are keyed by the ACS
message id instead of the recipient's address, so no address ends up in a key.

Its functions are synchronous, as the sample's, so the worker runs them on its default thread pool
(PYTHON_THREADPOOL_THREAD_COUNT unset). The same queue message shape as the project's (`channel`,
`to`, `content`, `id`), on the same runner, emulator and host.json queue settings. Settings:
AzureWebJobsStorage, ACS_CONNECTION_STRING, SEND_QUEUE, STATUS_TABLE, SMS_SENDER, EMAIL_SENDER,
WHATSAPP_CHANNEL.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from functools import cache
from typing import Any

import azure.functions as func

app = func.FunctionApp()
logger = logging.getLogger("baseline")
logging.getLogger("azure").setLevel(logging.WARNING)
_lock = threading.Lock()  # sync functions run on the worker's thread pool: build each client once


def _acs() -> tuple[str, Any]:
    from azure.core.credentials import AzureKeyCredential

    parts = dict(part.split("=", 1) for part in os.environ["ACS_CONNECTION_STRING"].split(";") if "=" in part)
    lowered = {key.lower(): value for key, value in parts.items()}
    return lowered["endpoint"].rstrip("/"), AzureKeyCredential(lowered["accesskey"])


@cache
def _sms() -> Any:
    from azure.communication.sms import SmsClient

    return SmsClient(*_acs())


@cache
def _email() -> Any:
    from azure.communication.email import EmailClient

    return EmailClient(*_acs())


@cache
def _messages() -> Any:
    from azure.communication.messages import NotificationMessagesClient

    return NotificationMessagesClient(*_acs())


@cache
def _statuses() -> Any:
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(os.environ["AzureWebJobsStorage"])  # noqa: SIM112 - the host's name
    return service.create_table_if_not_exists(os.environ["STATUS_TABLE"])


def _client(factory: Any) -> Any:
    with _lock:
        return factory()


def _send(request: dict[str, Any]) -> str:
    """Send one request and return the ACS message id; for email, only once its operation ended."""
    channel, to, content = request["channel"], request["to"], request["content"]
    if channel == "sms":
        result = _client(_sms).send(
            from_=os.environ["SMS_SENDER"], to=[to], message=content["text"], enable_delivery_report=True
        )[0]
        return str(result.message_id)
    if channel == "email":
        message = {
            "senderAddress": os.environ["EMAIL_SENDER"],
            "recipients": {"to": [{"address": to}]},
            "content": {"subject": content["subject"], "plainText": content["text"]},
        }
        return str(_client(_email).begin_send(message).result()["id"])
    from azure.communication.messages.models import TextNotificationContent

    notification = TextNotificationContent(
        channel_registration_id=os.environ["WHATSAPP_CHANNEL"], to=[to], content=content["text"]
    )
    return str(_client(_messages).send(notification).receipts[0].message_id)


@app.queue_trigger(arg_name="msg", queue_name="%SEND_QUEUE%", connection="AzureWebJobsStorage")
def send_message(msg: func.QueueMessage) -> None:
    request = json.loads(msg.get_body())
    message_id = _send(request)
    logger.info("sent channel=%s message_id=%s request_id=%s", request["channel"], message_id, request.get("id"))


@app.event_grid_trigger(arg_name="event")
def record_event(event: func.EventGridEvent) -> None:
    """Upsert the status the event carries, whatever the row held before (the sample's blind upsert)."""
    from azure.data.tables import UpdateMode

    data = event.get_json()
    message_id = str(data.get("messageId", ""))
    status = data.get("deliveryStatus") or data.get("status") or ""
    row = {"PartitionKey": message_id, "RowKey": message_id, "Status": str(status), "EventType": event.event_type}
    _client(_statuses).upsert_entity(row, mode=UpdateMode.MERGE)
