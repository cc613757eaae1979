"""The send request contract (schema version 1) and the message status model.

Why pydantic here: this is the edge where validation is the point. Producers in any language get
the same rules from the JSON Schema generated from these models (`schemas/send-request.v1.json`).
Rules that depend on settings (sender allowlist, segment limit) live in `shared.validation`.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, TypeAdapter, ValidationInfo, field_validator

MAX_EMAIL_BYTES = 10 * 1024 * 1024
# Message ids become Table Storage partition keys: no / \ # ? or control characters, at most 128 chars.
MESSAGE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@=+-]{0,127}$"
# The blob that holds a request too large for a queue message: `<message id>/<32 hex of its SHA-256>.json`
# in the app's payload container (`shared.claimcheck.payload_blob_name`); no other name is ever read.
PAYLOAD_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@=+-]{0,127}/[0-9a-f]{32}\.json$"
# RFC 3339 date-time with a mandatory offset (https://www.rfc-editor.org/rfc/rfc3339#section-5.6).
RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
# No C0/C1 control characters (CR, LF, NUL, ...) and no Unicode line or paragraph separators: these
# values become email headers (subject, attachment name and content type), where a line break starts
# a new header. The pattern is valid in ECMA-262 and in Rust's regex, so producers get the same rule.
SINGLE_LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _single_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must be one line of text: no control characters (CR, LF, NUL, tab, ...)")
    return value


SingleLine = Annotated[str, AfterValidator(_single_line), Field(json_schema_extra={"pattern": SINGLE_LINE_PATTERN})]
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
Float64 = Annotated[float, Field(allow_inf_nan=False)]
# Metadata is for small references (an order id, a campaign), as Stripe's is; bounded so a row and the
# status-feed events that repeat it stay far inside Table Storage's property and entity limits.
# Strict members: a string over the limit is refused, never read as a number ("007..." as 7).
MetadataKey = Annotated[str, Field(min_length=1, max_length=40)]
_METADATA_VALUE = (
    Annotated[str, Strict(), Field(max_length=256)]
    | Annotated[Int64, Strict()]
    | Annotated[Float64, Strict()]
    | Annotated[bool, Strict()]
)


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    WHATSAPP = "whatsapp"


class Purpose(StrEnum):
    TRANSACTIONAL = "transactional"
    MARKETING = "marketing"


class DeliveryMode(StrEnum):
    """At most once is the default: a send that cannot be checked becomes Unknown, not a duplicate."""

    AT_MOST_ONCE = "at-most-once"
    AT_LEAST_ONCE = "at-least-once"


class Priority(StrEnum):
    """Which lane a request takes: `high` (one-time codes, alerts) has a queue and trigger of its own,
    so it never waits behind a backlog of `normal` ones. Every gate still applies (rate per sender too)."""

    NORMAL = "normal"
    HIGH = "high"


def _is_normal(value: object) -> bool:
    # Left out of the stored JSON when normal: a request accepted before the field existed keeps its
    # canonical form, so its payload digest (the id-reuse check) still matches on redelivery.
    return value == Priority.NORMAL


class FallbackTrigger(StrEnum):
    """The ends of a message on which its `fallback` is sent: `refused` is Rejected because WhatsApp would
    refuse it (template not approved, outside the 24-hour window); `opted-out` is Suppressed (never by
    default: the recipient said no, and another channel must not override that unless the request asks)."""

    FAILED = "failed"
    EXPIRED = "expired"
    REFUSED = "refused"
    OPTED_OUT = "opted-out"
    UNKNOWN = "unknown"


DEFAULT_FALLBACK_ON = (FallbackTrigger.FAILED, FallbackTrigger.EXPIRED, FallbackTrigger.REFUSED)
MAX_FALLBACKS = 3


class Status(StrEnum):
    ACCEPTED = "Accepted"
    SENDING = "Sending"
    SENT = "Sent"
    DELIVERED = "Delivered"
    READ = "Read"
    FAILED = "Failed"
    EXPIRED = "Expired"
    REJECTED = "Rejected"
    SUPPRESSED = "Suppressed"
    DEAD_LETTERED = "DeadLettered"
    UNKNOWN = "Unknown"


# The statuses whose report ends the delivery leg that DeliveryLatencyMs measures.
REACHED = frozenset({Status.DELIVERED, Status.READ})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, str_strip_whitespace=False)


class SmsContent(_Strict):
    text: Annotated[str, Field(min_length=1, max_length=10_000)]


class EmailAttachment(_Strict):
    name: Annotated[SingleLine, Field(min_length=1, max_length=255)]
    content_type: Annotated[SingleLine, Field(alias="contentType", min_length=3, max_length=255)]
    content_in_base64: Annotated[str, Field(alias="contentInBase64", min_length=1)]

    @field_validator("content_in_base64")
    @classmethod
    def _is_base64(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", value) or len(value) % 4:
            raise ValueError("must be base64")
        return value


class EmailContent(_Strict):
    subject: Annotated[SingleLine, Field(min_length=1, max_length=998)]
    text: str | None = None
    html: str | None = None
    reply_to: Annotated[list[str] | None, Field(alias="replyTo", max_length=50)] = None
    attachments: Annotated[list[EmailAttachment] | None, Field(max_length=50)] = None

    def approximate_bytes(self) -> int:
        """Size of what ACS will receive, for the 10 MB limit (attachments count as their base64)."""
        parts = [self.subject, self.text or "", self.html or "", *(self.reply_to or [])]
        size = sum(len(p.encode()) for p in parts)
        return size + sum(len(a.content_in_base64) + len(a.name) for a in self.attachments or [])


class WhatsAppTemplate(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=512)]
    language: Annotated[str, Field(min_length=2, max_length=16)]
    values: Annotated[dict[str, str], Field(max_length=20)] = Field(default_factory=dict)
    body_bindings: Annotated[list[str], Field(alias="bodyBindings", max_length=20)] = Field(default_factory=list)


class WhatsAppContent(_Strict):
    text: Annotated[str | None, Field(min_length=1, max_length=4096)] = None
    template: WhatsAppTemplate | None = None


class _FallbackBase(_Strict):
    to: Annotated[str, Field(min_length=3, max_length=320)]
    from_: Annotated[str | None, Field(alias="from", max_length=320)] = None


class SmsFallback(_FallbackBase):
    """An SMS alternative; without content, the text of the message it replaces (SMS, WhatsApp or email text)."""

    channel: Literal[Channel.SMS]
    content: SmsContent | None = None


class EmailFallback(_FallbackBase):
    """An email alternative; content is needed (a subject) unless the message it replaces is an email."""

    channel: Literal[Channel.EMAIL]
    content: EmailContent | None = None


class WhatsAppFallback(_FallbackBase):
    """A WhatsApp alternative; without content, the text of the SMS or WhatsApp text it replaces."""

    channel: Literal[Channel.WHATSAPP]
    content: WhatsAppContent | None = None


FallbackEntry = Annotated[SmsFallback | EmailFallback | WhatsAppFallback, Field(discriminator="channel")]
AnyFallback = SmsFallback | EmailFallback | WhatsAppFallback


class _RequestBase(_Strict):
    schema_version: Annotated[Literal[1], Field(alias="schemaVersion")] = 1
    id: Annotated[str | None, Field(pattern=MESSAGE_ID_PATTERN)] = None
    to: Annotated[str, Field(min_length=3, max_length=320)]
    from_: Annotated[str | None, Field(alias="from", max_length=320)] = None
    purpose: Purpose = Purpose.TRANSACTIONAL
    expires_at: Annotated[datetime | None, Field(alias="expiresAt")] = None
    correlation_id: Annotated[SingleLine | None, Field(alias="correlationId", max_length=128)] = None
    metadata: Annotated[dict[MetadataKey, _METADATA_VALUE], Field(max_length=10)] = Field(default_factory=dict)
    delivery: DeliveryMode = DeliveryMode.AT_MOST_ONCE
    priority: Annotated[Priority, Field(exclude_if=_is_normal)] = Priority.NORMAL
    # Absent (None) unless given, so a request without them keeps its canonical form and digest.
    fallback: Annotated[list[FallbackEntry] | None, Field(min_length=1, max_length=MAX_FALLBACKS)] = None
    fallback_on: Annotated[list[FallbackTrigger] | None, Field(alias="fallbackOn", min_length=1, max_length=5)] = None

    @field_validator("fallback_on")
    @classmethod
    def _needs_fallback(cls, value: object, info: ValidationInfo) -> object:
        if value is not None and not info.data.get("fallback"):
            raise ValueError("needs fallback: the alternatives to send")
        return value

    @property
    def fallback_triggers(self) -> tuple[FallbackTrigger, ...]:
        """When the fallback is used: the request's `fallbackOn`, else the default (none without a fallback)."""
        if not self.fallback:
            return ()
        return tuple(dict.fromkeys(self.fallback_on or DEFAULT_FALLBACK_ON))

    @field_validator("schema_version", mode="before")
    @classmethod
    def _exactly_one(cls, value: object) -> object:
        # `true` and `1.0` equal 1 in Python; the contract's version is the JSON integer 1.
        if type(value) is not int:
            raise ValueError("must be the integer 1")
        return value

    @field_validator("expires_at", mode="before")
    @classmethod
    def _rfc3339(cls, value: object) -> object:
        # Only a string in RFC 3339 with its offset: pydantic alone would take a number as Unix time
        # and a date-time without offset as local time.
        if value is not None and not (isinstance(value, str) and re.fullmatch(RFC3339_PATTERN, value)):
            raise ValueError("must be an RFC 3339 date-time string with an offset, for example 2026-01-01T12:00:00Z")
        return value


class SmsRequest(_RequestBase):
    channel: Literal[Channel.SMS]
    content: SmsContent


class EmailRequest(_RequestBase):
    channel: Literal[Channel.EMAIL]
    content: EmailContent


class WhatsAppRequest(_RequestBase):
    channel: Literal[Channel.WHATSAPP]
    content: WhatsAppContent


SendRequest = Annotated[SmsRequest | EmailRequest | WhatsAppRequest, Field(discriminator="channel")]
AnyRequest = SmsRequest | EmailRequest | WhatsAppRequest
SEND_REQUEST_ADAPTER: TypeAdapter[AnyRequest] = TypeAdapter(SendRequest)


def send_request_json_schema() -> dict[str, object]:
    """The published JSON Schema of a send request, generated from the models."""
    schema = SEND_REQUEST_ADAPTER.json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://contact-messages.dev/schemas/send-request.v1.json",
        "title": "Contact Messages send request (schema version 1)",
        **schema,
    }
