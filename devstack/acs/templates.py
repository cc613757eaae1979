"""WhatsApp templates: `GET /messages/channels/{channelId}/templates`, and what Meta does with a template
or free-text send that it refuses.

Why: the app checks a template's approval and parameters, and the 24-hour customer service window,
before it sends. Tests and the demo need every template state and both sides of the window, and a
provider that refuses the same things the way Meta does through ACS: the send is accepted (202) and
then fails with a status event whose `error.channelCode` is Meta's code.

The list's route is `routes_whatsapp.list_templates`. Its shape is the Advanced Messages template
API's (as `azure-communication-messages` 1.1.0 reads it: `{"value": [...], "nextLink": ...}`, items
with `name`, `language`, `status`, `kind: "whatsApp"` and `content`, the template as WhatsApp returns
it). Every channel has the same catalogue, `TEMPLATES` (tests may change it: `AcsEmulator.set_template`).

Meta's codes (WhatsApp Cloud API error codes): 131047 re-engagement message (more than 24 hours since
the user last wrote), 132000 parameter count mismatch, 132001 template does not exist (in that
language, or not approved), 132015 template paused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

SERVICE_WINDOW = timedelta(hours=24)
REENGAGEMENT = ("131047", "Re-engagement message")
PARAMETER_MISMATCH = ("132000", "Number of parameters does not match the expected number of params")
TEMPLATE_MISSING = ("132001", "Template name does not exist in the translation")
TEMPLATE_PAUSED = ("132015", "Template is paused")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


@dataclass(frozen=True)
class TemplateSpec:
    """One template of the catalogue: its state and its body text (placeholders `{{1}}`, `{{name}}`)."""

    name: str
    language: str
    status: str
    body: str

    @property
    def key(self) -> tuple[str, str]:
        return self.name, self.language.replace("-", "_").lower()

    @property
    def parameters(self) -> int:
        return len(set(_PLACEHOLDER.findall(self.body)))

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "whatsApp",
            "name": self.name,
            "language": self.language,
            "status": self.status,
            "content": {
                "name": self.name,
                "language": self.language,
                "status": self.status.upper(),
                "category": "UTILITY",
                "components": [{"type": "BODY", "text": self.body}],
            },
        }


TEMPLATES: tuple[TemplateSpec, ...] = (
    TemplateSpec("sample_template", "en_US", "approved", "Thank you for your message."),
    TemplateSpec("sample_shipping_confirmation", "en_US", "approved", "Your package ships in {{1}} business days."),
    TemplateSpec("order_update", "en_US", "approved", "Order {{1}} is {{2}}."),
    TemplateSpec("otp", "en", "approved", "Your code is {{1}}."),
    TemplateSpec("new_offer", "en_US", "pending", "A new offer for you: {{1}}."),
    TemplateSpec("spring_sale", "en_US", "paused", "Spring sale: {{1}} off."),
    TemplateSpec("win_a_prize", "en_US", "rejected", "You won {{1}}!"),
)


def catalogue() -> dict[tuple[str, str], TemplateSpec]:
    return {spec.key: spec for spec in TEMPLATES}


def template_refusal(templates: dict[tuple[str, str], TemplateSpec], body: dict[str, Any]) -> tuple[str, str] | None:
    """Meta's error for a template send it refuses, or None when the template may be sent."""
    template = body.get("template")
    if not isinstance(template, dict):
        return TEMPLATE_MISSING
    language = str(template.get("language", "")).replace("-", "_").lower()
    spec = templates.get((str(template.get("name", "")), language))
    if spec is None or spec.status in ("pending", "rejected"):
        return TEMPLATE_MISSING
    if spec.status == "paused":
        return TEMPLATE_PAUSED
    bindings = template.get("bindings")
    body_refs = bindings.get("body", []) if isinstance(bindings, dict) else []
    return None if len(body_refs or []) == spec.parameters else PARAMETER_MISMATCH


def window_open(last_inbound: datetime | None, now: datetime) -> bool:
    return last_inbound is not None and now - last_inbound < SERVICE_WINDOW
