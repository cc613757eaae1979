"""Opt-outs name addresses the way sends do, and erasure keeps them: against real Azurite and the emulator.

An opt-out recorded under a form no send uses (spaces, a local number, an email for SMS) would be
reported as recorded and never match; an erasure that dropped the opt-out would let the next send
through. Both used to happen.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contactmsg.context import Exit
from shared.errors import ValidationFailed
from shared.models import Channel
from shared.runtime import Services
from shared.services.consent import ALL_SENDERS, ConsentState
from shared.validation import canonical_recipient
from tests.cli.test_cli import acs_cli, cli, settings_file, with_services  # noqa: F401  (fixtures)

OPS = ("--operator", "ops@example.com", "--reason", "asked by phone")
DPO = ("--operator", "dpo@example.com", "--reason", "erasure request")


@pytest.mark.parametrize(
    ("channel", "typed", "canonical"),
    [
        (Channel.SMS, "+1 425 555 0122", "+14255550122"),
        (Channel.WHATSAPP, "+44 20 7946 0958", "+442079460958"),
        (Channel.SMS, " +14255550122 ", "+14255550122"),
        (Channel.EMAIL, " ann@example.com ", "ann@example.com"),
    ],
)
def test_addresses_are_put_in_the_form_sends_use(channel: Channel, typed: str, canonical: str) -> None:
    assert canonical_recipient(channel, typed) == canonical


@pytest.mark.parametrize(
    ("channel", "typed"),
    [
        (Channel.SMS, "555-1234"),
        (Channel.SMS, "foo@bar.example"),
        (Channel.EMAIL, "+14255550100"),
        (Channel.WHATSAPP, ""),
    ],
)
def test_what_no_send_could_address_is_refused(channel: Channel, typed: str) -> None:
    with pytest.raises(ValidationFailed):
        canonical_recipient(channel, typed)


def test_an_opt_out_typed_with_spaces_blocks_the_number(settings_file: Path) -> None:  # noqa: F811
    result = cli(settings_file, "optout", "add", "sms", "+1 425 555 0122", *OPS)
    assert result.exit_code == 0, result.output
    assert "+14255550122" not in result.output  # masked, as everywhere else
    assert cli(settings_file, "optout", "check", "sms", "+14255550122").exit_code == Exit.NOT_FOUND
    assert cli(settings_file, "optout", "check", "sms", "+1 (425) 555-0122").exit_code == Exit.NOT_FOUND


@pytest.mark.parametrize(
    ("channel", "typed"), [("sms", "555-1234"), ("sms", "foo@bar.example"), ("email", "+14255550100")]
)
def test_an_opt_out_no_send_could_match_is_refused(settings_file: Path, channel: str, typed: str) -> None:  # noqa: F811
    result = cli(settings_file, "optout", "add", channel, typed, *OPS)
    assert result.exit_code == Exit.INVALID
    assert "recorded" not in result.output

    async def consent_rows(svc: Services) -> list[dict[str, object]]:
        return [row async for row in svc.storage.table(svc.names.consent).query("PartitionKey ne ''")]

    assert with_services(settings_file, consent_rows) == []


def test_erase_keeps_the_opt_out_and_drops_the_permission(settings_file: Path) -> None:  # noqa: F811
    """The README's session: opt out, then erase. The number must stay blocked."""
    assert cli(settings_file, "optout", "add", "sms", "+14255550111", *OPS).exit_code == 0
    # Per sender: opted out of the newsletter, opted in to billing notices.
    email = ("email", "bea@example.com")
    assert cli(settings_file, "optout", "add", *email, "--sender", "news@x.example", *OPS).exit_code == 0
    assert cli(settings_file, "optout", "remove", *email, "--sender", "billing@x.example", *OPS).exit_code == 0

    result = cli(settings_file, "--json", "erase", "--recipient", "+1 425 555 0111", *DPO)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"messages": 0, "consent": 0, "other": 0, "optouts_kept": 1}
    assert cli(settings_file, "optout", "check", "sms", "+14255550111").exit_code == Exit.NOT_FOUND

    result = cli(settings_file, "--json", "erase", "--recipient", "bea@example.com", *DPO)
    assert json.loads(result.output)["consent"] == 1  # the opt-in went
    assert json.loads(result.output)["optouts_kept"] == 1  # the opt-out stayed

    async def states(svc: Services) -> list[tuple[str, str]]:
        rows = [row async for row in svc.storage.table(svc.names.consent).query("PartitionKey ne ''")]
        return sorted((str(row["RowKey"]), str(row["State"])) for row in rows)

    assert with_services(settings_file, states) == [
        (ALL_SENDERS, ConsentState.OPTED_OUT.value),
        ("news@x.example", ConsentState.OPTED_OUT.value),
    ]


def test_a_send_after_erasure_is_still_suppressed(settings_file: Path) -> None:  # noqa: F811
    assert cli(settings_file, "optout", "add", "sms", "+14255550177", *OPS).exit_code == 0
    assert cli(settings_file, "erase", "--recipient", "+14255550177", *DPO).exit_code == 0

    async def send_one(svc: Services) -> str:
        from shared.services.decoding import QueueDelivery
        from tests.bodies import sms

        outcome = await svc.sending.handle(QueueDelivery(sms("after-erase", to="+14255550177"), "q-1", 1))
        return outcome.value

    assert with_services(settings_file, send_one) == "suppressed"


def test_erase_refuses_what_is_no_address(settings_file: Path) -> None:  # noqa: F811
    result = cli(settings_file, "erase", "--recipient", "555-1234", *DPO)
    assert result.exit_code == Exit.INVALID
    audit = with_services(settings_file, lambda svc: svc.audit.entries())
    assert [entry["Action"] for entry in audit] == []  # it never ran
