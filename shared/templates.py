"""WhatsApp templates as ACS lists them, and the rules a template send must meet (plain functions).

Why: Meta refuses a template that is not approved (pending, paused, rejected, or unknown in that
language) and a template message whose parameters do not match the template; ACS only reports it
after the send, as a Failed status. Checking first turns that into a refusal the producer sees.

The shapes are those of the Advanced Messages template API (`GET /messages/channels/{channelId}/
templates`, api-version 2024-08-30, as `azure-communication-messages` 1.1.0 calls it): each item has
`name`, `language`, `status` (`approved`, `rejected`, `pending`, `paused`), `kind: "whatsApp"` and
`content`, the template as WhatsApp returns it, whose `BODY` component's `text` holds the placeholders
(`{{1}}`, or named ones such as `{{order}}`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.errors import FieldError
from shared.models import WhatsAppTemplate

TEMPLATE_NOT_APPROVED = "template-not-approved"
TEMPLATE_MISMATCH = "template-parameters-mismatch"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


class TemplateState(StrEnum):
    APPROVED = "approved"
    PENDING = "pending"
    PAUSED = "paused"
    REJECTED = "rejected"


@dataclass(frozen=True)
class TemplateInfo:
    """One template of one channel: its name, language, state and the body parameters it expects."""

    name: str
    language: str
    state: str  # a TemplateState value, or whatever new state ACS may report (never approved)
    body_parameters: tuple[str, ...] = ()

    @property
    def approved(self) -> bool:
        return self.state.lower() == TemplateState.APPROVED

    @property
    def key(self) -> tuple[str, str]:
        return template_key(self.name, self.language)


def template_key(name: str, language: str) -> tuple[str, str]:
    """How a template is looked up: ACS and its samples write `en_US` and `en_us` alike."""
    return name, language.replace("-", "_").lower()


def body_parameters(content: Any) -> tuple[str, ...]:
    """The distinct placeholders of the template's BODY text, in order of first appearance."""
    components = content.get("components") if isinstance(content, Mapping) else None
    names: list[str] = []
    for component in components if isinstance(components, list) else []:
        if isinstance(component, Mapping) and str(component.get("type", "")).upper() == "BODY":
            for name in _PLACEHOLDER.findall(str(component.get("text", ""))):
                if name not in names:
                    names.append(name)
    return tuple(names)


def template_info(item: Mapping[str, Any]) -> TemplateInfo:
    """A template item of the REST answer (or its SDK model, which is a mapping of the same JSON)."""
    return TemplateInfo(
        name=str(item.get("name", "")),
        language=str(item.get("language", "")),
        state=str(item.get("status", "")).lower(),
        body_parameters=body_parameters(item.get("content")),
    )


def approval_problem(template: WhatsAppTemplate, info: TemplateInfo | None) -> FieldError | None:
    """Why this template may not be sent on this channel, or None when it is approved."""
    if info is None:
        message = f"{TEMPLATE_NOT_APPROVED}: no template '{template.name}' in language '{template.language}'"
        return FieldError("content.template", message + " on this channel")
    if not info.approved:
        return FieldError("content.template", f"{TEMPLATE_NOT_APPROVED}: the template is {info.state}, not approved")
    return None


def parameter_problems(template: WhatsAppTemplate, info: TemplateInfo) -> list[FieldError]:
    """Where the request's values and body bindings differ from what the template's body expects:
    one binding per placeholder (by name when the template names them), each naming a given value."""
    problems: list[FieldError] = []
    expected, bindings = info.body_parameters, template.body_bindings
    if len(bindings) != len(expected):
        problems.append(
            FieldError(
                "content.template.bodyBindings",
                f"{TEMPLATE_MISMATCH}: the template's body expects {len(expected)} parameter(s), got {len(bindings)}",
            )
        )
    elif _named(expected) and list(bindings) != list(expected):
        wanted = ", ".join(expected)
        problems.append(
            FieldError("content.template.bodyBindings", f"{TEMPLATE_MISMATCH}: the template's body expects {wanted}")
        )
    missing = [name for name in bindings if name not in template.values]
    if missing:
        problems.append(
            FieldError("content.template.values", f"{TEMPLATE_MISMATCH}: no value for {', '.join(missing)}")
        )
    return problems


def _named(parameters: tuple[str, ...]) -> bool:
    return any(not name.isdigit() for name in parameters)
