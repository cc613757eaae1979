"""Dispatch a checked request to the right ACS sender; the one seam tests may replace."""

from __future__ import annotations

from typing import Protocol

from shared.adapters.acs import AcsSenders, ProviderReceipt, SendIds
from shared.ids import operation_id
from shared.models import EmailRequest, SmsRequest, WhatsAppRequest
from shared.templates import TemplateInfo
from shared.validation import CheckedRequest


class Provider(Protocol):
    async def send(self, checked: CheckedRequest, ids: SendIds) -> ProviderReceipt: ...

    async def email_status(self, operation_id: str) -> str | None: ...

    async def close(self) -> None: ...


class AcsProvider:
    """Sends through ACS. SMS carries our message id as its tag; email uses our operation id."""

    def __init__(self, senders: AcsSenders) -> None:
        self._senders = senders

    async def send(self, checked: CheckedRequest, ids: SendIds) -> ProviderReceipt:
        request = checked.request
        if isinstance(request, SmsRequest):
            return await self._senders.send_sms(
                checked.sender, request.to, request.content.text, checked.message_id, ids
            )
        if isinstance(request, EmailRequest):
            return await self._senders.send_email(
                checked.sender, request.to, request.content, operation_id(checked.message_id)
            )
        assert isinstance(request, WhatsAppRequest)
        content = request.content
        return await self._senders.send_whatsapp(checked.sender, request.to, content.text, content.template, ids)

    async def email_status(self, operation_id: str) -> str | None:
        return await self._senders.email_status(operation_id)

    async def list_templates(self, channel_id: str) -> list[TemplateInfo]:
        return await self._senders.list_templates(channel_id)

    async def close(self) -> None:
        await self._senders.close()
