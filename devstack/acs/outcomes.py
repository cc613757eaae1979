"""Simulated recipients: the address or number chooses what happens after a send.

Why: tests and the demo need failures, bounces, silence, lateness, duplicates and reordering on
demand, the way mature notification services publish test addresses. The rules below are a contract
other components rely on (see docs/acs-emulator.md); change them only together with that table.

Phone numbers (SMS and WhatsApp) are matched on their last two digits, email addresses on the
`+keyword` in the local part (`ann+bounce@example.com`, also `ann+bounce-7@…`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from devstack.acs.models import Final


class StepKind(StrEnum):
    """A delivery report or an email engagement (view/click) event."""

    REPORT = "report"
    ENGAGEMENT = "engagement"


@dataclass(frozen=True)
class Step:
    """One event in a planned sequence, in the order it is delivered.

    `time_offset` moves the event's timestamps (data and envelope) relative to the first report, so
    an event delivered later can carry an earlier time (that is what "out of order" means to a
    consumer); `envelope_offset` moves only the envelope's eventTime, for a re-sent report whose data
    is unchanged. `copies` > 1 re-delivers the identical envelope (same id). `fresh_id` gives a
    repeated report its own id.
    """

    status: str
    kind: StepKind = StepKind.REPORT
    time_offset: float = 0.0
    envelope_offset: float = 0.0
    copies: int = 1
    fresh_id: bool = False
    error: tuple[str, str] | None = None  # a Failed WhatsApp status's (channelCode, channelMessage)


@dataclass(frozen=True)
class Plan:
    """Everything the emulator will do for one recipient of one accepted (or rejected) send."""

    final: Final
    steps: tuple[Step, ...] = ()
    late: bool = False
    rejected: bool = False
    operation_failed: bool = False


REJECTED = Plan(final=Final.REJECTED, rejected=True)
_NO_REPORT = Plan(final=Final.NO_REPORT)

_SMS_PLANS: dict[str, Plan] = {
    "01": Plan(Final.FAILED, (Step("Failed"),)),
    "02": _NO_REPORT,
    "03": Plan(Final.DELIVERED, (Step("Delivered"),), late=True),
    "04": Plan(Final.DELIVERED, (Step("Delivered", copies=3),)),
    "05": Plan(Final.DELIVERED, (Step("Delivered"), Step("Delivered", envelope_offset=-2.0, fresh_id=True))),
    "06": REJECTED,
    # Failed three times over (the same envelope), then once more under a fresh id with an earlier time.
    "18": Plan(Final.FAILED, (Step("Failed", copies=3), Step("Failed", envelope_offset=-2.0, fresh_id=True))),
}
_SMS_DEFAULT = Plan(Final.DELIVERED, (Step("Delivered"),))

_WA_SENT = Step("Sent")
_WA_DELIVERED = Step("Delivered", time_offset=1.0)
_WA_READ = Step("Read", time_offset=2.0)
_WHATSAPP_PLANS: dict[str, Plan] = {
    "01": Plan(Final.FAILED, (Step("Failed"),)),
    "02": _NO_REPORT,
    "03": Plan(Final.DELIVERED, (_WA_SENT, _WA_DELIVERED), late=True),
    "04": Plan(Final.DELIVERED, (_WA_SENT, Step("Delivered", time_offset=1.0, copies=3))),
    "05": Plan(Final.READ, (_WA_READ, _WA_DELIVERED, _WA_SENT)),
    "06": REJECTED,
    "07": Plan(Final.READ, (_WA_SENT, _WA_DELIVERED, _WA_READ)),
    # Failed three times over (the same envelope), then the Sent status that came before it, late.
    "18": Plan(Final.FAILED, (Step("Failed", time_offset=1.0, copies=3), _WA_SENT)),
}
_WHATSAPP_DEFAULT = Plan(Final.DELIVERED, (_WA_SENT, _WA_DELIVERED))

_VIEW_LATER = Step("view", StepKind.ENGAGEMENT, time_offset=30.0)
_CLICK_LATER = Step("click", StepKind.ENGAGEMENT, time_offset=60.0)
_EMAIL_PLANS: dict[str, Plan] = {
    "bounce": Plan(Final.BOUNCED, (Step("Bounced"),)),
    "suppressed": Plan(Final.SUPPRESSED, (Step("Suppressed"),)),
    "quarantined": Plan(Final.QUARANTINED, (Step("Quarantined"),)),
    "filtered": Plan(Final.FILTERED_SPAM, (Step("FilteredSpam"),)),
    "failed": Plan(Final.FAILED, (Step("Failed"),)),
    "expanded": Plan(Final.DELIVERED, (Step("Expanded"), Step("Delivered", time_offset=1.0))),
    "noreport": _NO_REPORT,
    "late": Plan(Final.DELIVERED, (Step("Delivered"),), late=True),
    "duplicate": Plan(Final.DELIVERED, (Step("Delivered", copies=3),)),
    "reorder": Plan(Final.DELIVERED, (_VIEW_LATER, Step("Delivered"))),
    "engage": Plan(Final.DELIVERED, (Step("Delivered"), _VIEW_LATER, _CLICK_LATER)),
    "opfail": Plan(Final.FAILED, (Step("Failed"),), operation_failed=True),
}
_EMAIL_DEFAULT = Plan(Final.DELIVERED, (Step("Delivered"),))

_EMAIL_KEYWORD = re.compile(r"^[^+@]*\+([a-z]+)[^@]*@", re.IGNORECASE)


def last_two_digits(number: str) -> str:
    """The last two digits of a phone number, ignoring `+`, spaces and other punctuation."""
    digits = "".join(ch for ch in number if ch.isdigit())
    return digits[-2:]


def email_keyword(address: str) -> str | None:
    """The lower-cased `+keyword` of an email address (`ann+bounce-2@x` gives `bounce`), if any."""
    match = _EMAIL_KEYWORD.match(address)
    return match.group(1).lower() if match else None


def sms_plan(to: str) -> Plan:
    """What happens to an SMS sent to `to`."""
    return _SMS_PLANS.get(last_two_digits(to), _SMS_DEFAULT)


def whatsapp_plan(to: str) -> Plan:
    """What happens to a WhatsApp message sent to `to`."""
    return _WHATSAPP_PLANS.get(last_two_digits(to), _WHATSAPP_DEFAULT)


def email_plan(address: str, *, tracking_enabled: bool = True) -> Plan:
    """What happens to an email sent to `address`.

    Engagement events are dropped when the message turned tracking off, as the real service only
    emits them when user-engagement tracking is on.
    """
    plan = _EMAIL_PLANS.get(email_keyword(address) or "", _EMAIL_DEFAULT)
    if tracking_enabled:
        return plan
    steps = tuple(step for step in plan.steps if step.kind is StepKind.REPORT)
    return Plan(plan.final, steps, plan.late, plan.rejected, plan.operation_failed)


def refused_by_meta(error: tuple[str, str]) -> Plan:
    """A WhatsApp send ACS accepts and Meta then refuses (a template it will not send, free text
    outside the 24-hour window): one Failed status carrying Meta's code."""
    return Plan(Final.FAILED, (Step("Failed", error=error),))


def without_reports(plan: Plan) -> Plan:
    """The plan for an SMS sent with delivery reports turned off: same fate, no events."""
    final = plan.final if plan.rejected else Final.NO_REPORT
    return Plan(final, (), plan.late, plan.rejected, plan.operation_failed)
