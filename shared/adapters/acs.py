"""ACS senders for SMS, email and WhatsApp over the official async SDKs.

Why each quirk is handled here (acs-contract.md):
- Connection strings with `http://` endpoints are silently upgraded to https by the SDKs, so an http
  endpoint is parsed here and given to the constructor with `AzureKeyCredential` (local emulator).
- The SMS SDK makes a new repeatability id on every `send()`. We give it ours through azure-core's
  supported `per_call_policies` hook, which runs before the HMAC signing policy, so a resend after a
  crash carries the same id and ACS deduplicates it within its window.
- The SDKs retry 429s (and 5xx) by sleeping inside the call; every client is built with
  `retry_total=0` so throttling comes straight back to us and no worker sleeps on it.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import AzureError
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.rest import HttpRequest

from shared.adapters.errors import map_provider_error, retry_after_from
from shared.adapters.sdk_options import NO_ENV_SETTINGS
from shared.errors import ConfigurationError, SendRejected, Throttled, TransientError
from shared.models import EmailContent, WhatsAppTemplate
from shared.settings import AcsTimeouts
from shared.templates import TemplateInfo, template_info

EMAIL_API_VERSION = "2025-09-01"
_SMS_IDS: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("sms_ids", default=None)


@dataclass(frozen=True)
class SendIds:
    """The ids that make a resend the same send to ACS: repeatability id and first-sent time."""

    repeatability_id: str
    first_sent: datetime

    @property
    def first_sent_rfc1123(self) -> str:
        return format_datetime(self.first_sent, usegmt=True)


@dataclass(frozen=True)
class ProviderReceipt:
    provider_message_id: str


class SmsRepeatabilityPolicy(SansIOHTTPPolicy[Any, Any]):
    """Rewrites the per-recipient repeatability fields of `POST /sms` with the ids of this send."""

    def on_request(self, request: PipelineRequest[Any]) -> None:
        ids = _SMS_IDS.get()
        http = request.http_request
        if ids is None or http.method != "POST" or "/sms" not in http.url:
            return
        body = json.loads(http.body) if isinstance(http.body, str | bytes) else None
        if not isinstance(body, dict):
            return
        for recipient in body.get("smsRecipients", []):
            recipient["repeatabilityRequestId"], recipient["repeatabilityFirstSent"] = ids
        http.set_json_body(body)


@dataclass(frozen=True)
class AcsConnection:
    endpoint: str
    credential: Any  # AzureKeyCredential or an async TokenCredential


def parse_acs_connection(connection_string: str | None, endpoint: str | None, credential: Any = None) -> AcsConnection:
    """Resolve how to reach ACS: key from a connection string (kept http if given), else the endpoint with
    `credential`, the process's one Entra ID credential (shared/adapters/identity.py)."""
    if connection_string:
        parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
        lowered = {k.lower(): v for k, v in parts.items()}
        if "endpoint" not in lowered or "accesskey" not in lowered:
            raise ConfigurationError("ACS_CONNECTION_STRING needs endpoint=...;accesskey=...")
        return AcsConnection(lowered["endpoint"].rstrip("/"), AzureKeyCredential(lowered["accesskey"]))
    if endpoint:
        if credential is None:
            raise ConfigurationError("ACS_ENDPOINT needs a credential (the app's managed identity)")
        return AcsConnection(endpoint.rstrip("/"), credential)
    raise ConfigurationError("ACS_ENDPOINT or ACS_CONNECTION_STRING must be set")


def client_options(timeouts: AcsTimeouts) -> dict[str, Any]:
    """No SDK retries (the pipeline retries with its ledger), and bounded waits: a send attempt ends
    within the connect and read timeouts, which is what lets a claim younger than the claim lease be
    trusted to be alive (shared/services/recovery.py)."""
    return {
        "retry_total": 0,
        **NO_ENV_SETTINGS,
        "connection_timeout": timeouts.connect_seconds,
        "read_timeout": timeouts.read_seconds,
    }


class AcsSenders:
    """The three async ACS clients, built on first use and reused for the life of the process."""

    def __init__(self, connection: AcsConnection, timeouts: AcsTimeouts | None = None) -> None:
        self._conn = connection
        self._options = client_options(timeouts or AcsTimeouts())
        self._sms: Any = None
        self._email: Any = None
        self._messages: Any = None
        self._templates: Any = None

    def _sms_client(self) -> Any:
        if self._sms is None:
            from azure.communication.sms.aio import SmsClient  # lazy: keeps cold start small

            self._sms = SmsClient(
                self._conn.endpoint,
                self._conn.credential,
                per_call_policies=[SmsRepeatabilityPolicy()],
                **self._options,
            )
        return self._sms

    def _email_client(self) -> Any:
        if self._email is None:
            from azure.communication.email.aio import EmailClient

            self._email = EmailClient(self._conn.endpoint, self._conn.credential, **self._options)
        return self._email

    def _messages_client(self) -> Any:
        if self._messages is None:
            from azure.communication.messages.aio import NotificationMessagesClient

            self._messages = NotificationMessagesClient(self._conn.endpoint, self._conn.credential, **self._options)
        return self._messages

    def _templates_client(self) -> Any:
        if self._templates is None:
            from azure.communication.messages.aio import MessageTemplateClient

            self._templates = MessageTemplateClient(self._conn.endpoint, self._conn.credential, **self._options)
        return self._templates

    async def list_templates(self, channel_id: str) -> list[TemplateInfo]:
        """Every template of a WhatsApp channel with its state (`GET /messages/channels/{id}/templates`,
        followed over its `nextLink` pages by the SDK's pager)."""
        try:
            return [template_info(item) async for item in self._templates_client().list_templates(channel_id)]
        except AzureError as exc:
            raise map_provider_error(exc) from exc

    async def send_sms(self, sender: str, to: str, text: str, tag: str, ids: SendIds) -> ProviderReceipt:
        token = _SMS_IDS.set((ids.repeatability_id, ids.first_sent_rfc1123))
        try:
            results = await self._sms_client().send(
                from_=sender, to=[to], message=text, enable_delivery_report=True, tag=tag
            )
        except AzureError as exc:
            raise map_provider_error(exc) from exc
        finally:
            _SMS_IDS.reset(token)
        result = results[0]
        if result.successful and result.message_id:
            return ProviderReceipt(str(result.message_id))
        status = int(result.http_status_code or 0)
        if status == 429:
            raise Throttled(5.0, "sms recipient throttled")
        if status >= 500 or status == 408:
            raise TransientError(f"sms recipient status {status}")
        raise SendRejected(f"Sms{status}", result.error_message or "recipient rejected")

    async def send_email(self, sender: str, to: str, content: EmailContent, operation_id: str) -> ProviderReceipt:
        return await self.send_email_message(email_message(sender, to, content), operation_id)

    async def send_email_message(self, message: Mapping[str, Any], operation_id: str) -> ProviderReceipt:
        try:
            poller = await self._email_client().begin_send(dict(message), operation_id=operation_id, polling=False)
            await poller.result()
        except AzureError as exc:
            raise map_provider_error(exc) from exc
        return ProviderReceipt(operation_id)

    async def email_status(self, operation_id: str) -> str | None:
        """The operation status (`Running`, `Succeeded`, `Failed`...), or None if ACS never saw it."""
        request = HttpRequest("GET", f"/emails/operations/{operation_id}?api-version={EMAIL_API_VERSION}")
        try:
            response = await self._email_client().send_request(request)
        except AzureError as exc:
            raise map_provider_error(exc) from exc
        if response.status_code == 404:
            return None
        if response.status_code == 429:
            raise Throttled(retry_after_from(response.headers), "email status throttled")
        if response.status_code != 200:
            raise TransientError(f"email status answered {response.status_code}")
        return str(response.json().get("status", ""))

    async def send_whatsapp(
        self, channel_id: str, to: str, text: str | None, template: WhatsAppTemplate | None, ids: SendIds
    ) -> ProviderReceipt:
        content = _whatsapp_content(channel_id, to, text, template)
        headers = {"Repeatability-Request-ID": ids.repeatability_id, "Repeatability-First-Sent": ids.first_sent_rfc1123}
        try:
            result = await self._messages_client().send(content, headers=headers)
        except AzureError as exc:
            raise map_provider_error(exc) from exc
        return ProviderReceipt(str(result.receipts[0].message_id))

    async def close(self) -> None:
        for client in (self._sms, self._email, self._messages, self._templates):
            if client is not None:
                await client.close()


def email_message(sender: str, to: str, content: EmailContent) -> dict[str, Any]:
    """The ACS email payload for one recipient (the SDK sends this dict as is)."""
    body: dict[str, Any] = {"subject": content.subject}
    if content.text:
        body["plainText"] = content.text
    if content.html:
        body["html"] = content.html
    message: dict[str, Any] = {"senderAddress": sender, "recipients": {"to": [{"address": to}]}, "content": body}
    if content.reply_to:
        message["replyTo"] = [{"address": address} for address in content.reply_to]
    if content.attachments:
        message["attachments"] = [
            {"name": a.name, "contentType": a.content_type, "contentInBase64": a.content_in_base64}
            for a in content.attachments
        ]
    return message


def _whatsapp_content(channel_id: str, to: str, text: str | None, template: WhatsAppTemplate | None) -> Any:
    from azure.communication.messages.models import (  # lazy: keeps cold start small
        MessageTemplate,
        MessageTemplateText,
        MessageTemplateValue,
        TemplateNotificationContent,
        TextNotificationContent,
        WhatsAppMessageTemplateBindings,
        WhatsAppMessageTemplateBindingsComponent,
    )

    if template is None:
        return TextNotificationContent(channel_registration_id=channel_id, to=[to], content=text or "")
    values: list[MessageTemplateValue] = [
        MessageTemplateText(name=name, text=value) for name, value in template.values.items()
    ]
    bindings = WhatsAppMessageTemplateBindings(
        body=[WhatsAppMessageTemplateBindingsComponent(ref_value=name) for name in template.body_bindings]
    )
    message_template = MessageTemplate(
        name=template.name, language=template.language, template_values=values, bindings=bindings
    )
    return TemplateNotificationContent(channel_registration_id=channel_id, to=[to], template=message_template)
