"""What a new user ran into on a first walk through the CLI, against real Azurite and the emulator.

Each test names the command as the user typed it: a usage slip gets one line and exit 2, a stopped
stack gets a hint, and counts that look wrong say why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from contactmsg.context import Exit
from devstack.acs import AcsEmulator
from devstack.azurite import Azurite
from shared.runtime import Services
from shared.services.decoding import QueueDelivery
from shared.services.outcomes import Outcome
from tests.bodies import sms
from tests.cli import test_cli
from tests.cli.test_cli import cli, with_services
from tests.integration.conftest import SMS_SENDER, app_env

acs_cli, settings_file = test_cli.acs_cli, test_cli.settings_file  # the fixtures of test_cli, shared
ROOT = Path(__file__).resolve().parents[2]
OPS = ("--operator", "ops@example.com", "--reason", "incident")


def _request_file(tmp_path: Path, message_id: str) -> Path:
    path = tmp_path / "req.json"
    path.write_text(json.dumps({"id": message_id, "channel": "sms", "to": "+14255550123", "content": {"text": "hi"}}))
    return path


def _audit(settings_file: Path) -> list[tuple[str, str]]:
    entries = with_services(settings_file, lambda svc: svc.audit.entries())
    return [(a["Action"], a["Subject"]) for a in entries]


def test_report_since_an_unknown_unit_is_one_line_and_exit_2(settings_file: Path) -> None:
    """`report --since 1y` names the accepted forms on one line, without a traceback."""
    result = cli(settings_file, "report", "--since", "1y")
    assert result.exit_code == Exit.USAGE
    assert result.output.splitlines() == ["error: --since '1y': use a number and a unit: 30m, 6h, 2d"]


def test_a_command_against_a_stopped_stack_exits_3_with_a_hint_and_no_aiohttp_noise(
    tmp_path: Path, azurite: Azurite, acs_cli: AcsEmulator
) -> None:
    """With nothing listening on the storage ports the user learns how to start the stack, and every
    client is closed, so aiohttp prints no "Unclosed client session"."""
    stopped = Azurite()  # never started: its ports answer nothing
    settings = tmp_path / "local.settings.json"
    values = app_env(azurite, acs_cli, AzureWebJobsStorage=stopped.connection_string)
    settings.write_text(json.dumps({"Values": values}))
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "contactmsg", "--settings", str(settings), "status", "otp-1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == Exit.FAILED
    assert "storage unreachable" in result.stderr
    assert "start it with `python -m contactmsg stack start --detach`" in result.stderr
    assert "Unclosed" not in result.stderr


def test_send_with_only_a_file_sends_the_file(settings_file: Path, tmp_path: Path) -> None:
    """`send --file req.json` needs no channel or address on the command line."""
    result = cli(settings_file, "send", "--file", str(_request_file(tmp_path, "file-1")))
    assert result.exit_code == 0, result.output
    assert json.loads(cli(settings_file, "status", "file-1", "--json").output)["channel"] == "sms"


def test_send_with_a_file_and_an_agreeing_channel_and_address_sends_it(settings_file: Path, tmp_path: Path) -> None:
    """Repeating what the file says is allowed."""
    file = str(_request_file(tmp_path, "file-2"))
    assert cli(settings_file, "send", "sms", "+14255550123", "--file", file).exit_code == 0


def test_send_with_a_file_that_disagrees_with_the_command_line_is_refused(settings_file: Path, tmp_path: Path) -> None:
    """`send email x@y.com --file req.json` (an SMS request) sends nothing and exits 2 naming both."""
    result = cli(settings_file, "send", "email", "x@y.com", "--file", str(_request_file(tmp_path, "file-3")))
    assert result.exit_code == Exit.USAGE
    assert "'email' disagrees with 'sms'" in result.output
    assert cli(settings_file, "status", "file-3").exit_code == Exit.NOT_FOUND


def test_send_without_a_channel_or_a_file_is_a_usage_error(settings_file: Path) -> None:
    """Both ways to say what to send are named."""
    result = cli(settings_file, "send", "--text", "hi")
    assert result.exit_code == Exit.USAGE
    assert "--file" in result.output


def test_send_to_an_unknown_channel_names_the_channels(settings_file: Path) -> None:
    """`send fax ...` reads like every other command's channel error, not pydantic's."""
    result = cli(settings_file, "send", "fax", "+14255550123", "--text", "hi")
    assert result.exit_code == Exit.USAGE
    assert result.output.splitlines() == ["error: unknown channel 'fax': use sms, email or whatsapp"]


def test_pause_of_something_that_is_neither_a_channel_nor_a_sender_is_refused(settings_file: Path) -> None:
    """`pause faxes` would hold nothing: it exits 2, names what is accepted and records nothing."""
    result = cli(settings_file, "pause", "faxes", *OPS)
    assert result.exit_code == Exit.USAGE
    assert "sms, email, whatsapp" in result.output and SMS_SENDER in result.output
    assert _audit(settings_file) == []


def test_pause_and_resume_of_a_configured_sender_are_accepted(settings_file: Path) -> None:
    """A sender identity is a pause target, exactly as configured."""
    assert cli(settings_file, "pause", SMS_SENDER, *OPS).exit_code == 0
    assert cli(settings_file, "resume", SMS_SENDER, *OPS).exit_code == 0
    assert _audit(settings_file) == [("pause", SMS_SENDER), ("resume", SMS_SENDER)]


def test_resume_accepts_any_target_that_is_paused(settings_file: Path) -> None:
    """A target paused before targets were checked can still be lifted."""

    async def pause_faxes(svc: Services) -> None:
        await svc.control.pause("faxes", actor="old-cli", reason="typo", now=svc.clock())

    with_services(settings_file, pause_faxes)
    assert cli(settings_file, "resume", "faxes", *OPS).exit_code == 0
    assert cli(settings_file, "resume", "faxes", *OPS).exit_code == Exit.USAGE


def test_replay_of_an_unknown_id_exits_1(settings_file: Path) -> None:
    """Not found is exit 1, as for `status`."""
    result = cli(settings_file, "dead-letters", "replay", "no-such-id", *OPS)
    assert result.exit_code == Exit.NOT_FOUND
    assert "no such message: no-such-id" in result.output


def test_replay_of_a_known_and_an_unknown_id_replays_the_known_one_and_exits_1(settings_file: Path) -> None:
    """Every id is tried; one that does not exist still makes the exit 1, so a typo is not lost."""

    async def dead_letter(svc: Services) -> None:
        await svc.intake.submit(sms("dl-mix"))
        await svc.dead_letters.record(sms("dl-mix"), "q", "max dequeue count")

    with_services(settings_file, dead_letter)
    result = cli(settings_file, "--json", "dead-letters", "replay", "dl-mix", "nope", *OPS)
    assert result.exit_code == Exit.NOT_FOUND
    assert json.loads(result.stdout) == [
        {"id": "dl-mix", "action": "requeued"},
        {"id": "nope", "action": "skipped: no such message"},
    ]


def test_replay_all_with_nothing_dead_lettered_is_ok_and_says_none(settings_file: Path) -> None:
    """Nothing to replay is not an error, and an empty result reads "none" rather than an empty table."""
    result = cli(settings_file, "dead-letters", "replay", "--all", *OPS)
    assert result.exit_code == 0
    assert result.output.strip() == "replay: none"


def test_json_after_the_subcommand_works_like_before_it(settings_file: Path) -> None:
    """`status ID --json` and `dead-letters list --json` print JSON, as `--json status ID` does."""
    cli(settings_file, "send", "sms", "+14255550123", "--text", "x", "--id", "json-1")
    assert json.loads(cli(settings_file, "status", "json-1", "--json").output)["status"] == "Accepted"
    assert json.loads(cli(settings_file, "dead-letters", "list", "--json").output)["messages"] == []


def test_report_says_how_many_sent_messages_are_not_counted_yet(settings_file: Path) -> None:
    """A message sent a moment ago is within its delivery deadline: the report shows it apart, not as 0/0."""

    async def send_one(svc: Services) -> None:
        await svc.intake.submit(sms("rep-1"))
        assert await svc.sending.handle(QueueDelivery(sms("rep-1"), uuid.uuid4().hex, 1)) == Outcome.SENT

    with_services(settings_file, send_one)
    cli(settings_file, "reconcile")
    data = json.loads(cli(settings_file, "report", "--since", "1h", "--json").output)
    assert (data["total"], data["withinSla"], data["awaitingReconcile"]) == (0, 1, 0)
    text = cli(settings_file, "report", "--since", "1h").output
    assert "none counted" in text
    assert "not counted yet: 1 sent message(s) within their delivery deadline (SLA)" in text


def test_report_for_another_channel_counts_none_of_its_messages(settings_file: Path) -> None:
    """`--channel email` leaves out an SMS waiting for its deadline."""

    async def send_one(svc: Services) -> None:
        await svc.intake.submit(sms("rep-2"))
        await svc.sending.handle(QueueDelivery(sms("rep-2"), uuid.uuid4().hex, 1))

    with_services(settings_file, send_one)
    data = json.loads(cli(settings_file, "--json", "report", "--channel", "email").output)
    assert data["withinSla"] == 0


def test_reconcile_prints_a_readable_summary(settings_file: Path) -> None:
    """No raw storage row: labelled lines, with "none" for empty counters."""
    output = cli(settings_file, "reconcile").output
    assert output.startswith("reconciled at ")
    assert "actions: none" in output and "poison queue depth 0" in output
    assert "PartitionKey" not in output


def test_an_empty_dead_letter_listing_says_none(settings_file: Path) -> None:
    """Two empty tables read like a rendering fault; "none" does not."""
    output = cli(settings_file, "dead-letters", "list").output
    assert output.splitlines() == ["dead-lettered messages: none", "undecodable payloads: none"]


def test_status_of_a_message_held_by_a_pause_says_so(settings_file: Path) -> None:
    """`status` of an Accepted message showed nothing about why it waits; a pause holding it is named."""
    assert cli(settings_file, "pause", "sms", *OPS).exit_code == 0

    async def handle(svc: Services) -> Outcome:
        return await svc.sending.handle(QueueDelivery(sms("held-1"), uuid.uuid4().hex, 1))

    assert with_services(settings_file, handle) == Outcome.RESCHEDULED
    held = json.loads(cli(settings_file, "--json", "status", "held-1").output)
    assert held["status"] == "Accepted" and "sms" in held["heldBy"]
    assert cli(settings_file, "resume", "sms", *OPS).exit_code == 0
    assert "heldBy" not in json.loads(cli(settings_file, "--json", "status", "held-1").output)


def test_send_again_under_an_id_says_whether_anything_was_queued(settings_file: Path) -> None:
    """The same request again is the same message; a different one under its id is refused (exit 4)."""
    first = ("send", "sms", "+14255550123", "--text", "code 1234", "--id", "again-1")
    assert json.loads(cli(settings_file, "--json", *first).output)["status"] == "queued"
    assert json.loads(cli(settings_file, "--json", *first).output)["status"] == "exists"
    other = cli(settings_file, "send", "sms", "+14255550123", "--text", "code 9876", "--id", "again-1")
    assert other.exit_code == Exit.INVALID and "already used by a different request" in other.output


def test_history_fits_80_columns_without_cutting_times_or_event_types() -> None:
    """In an 80-column terminal the history table used to cut timestamps and event types short."""
    from rich.console import Console

    from contactmsg.views import history_table

    view = {
        "id": "narrow-1",
        "transitions": [{"at": "2026-11-28T10:00:00.1234567Z", "status": "Sent"}],
        "events": [
            {
                "eventTime": "2026-11-28T10:00:02.5000000Z",
                "eventType": "Microsoft.Communication.SMSDeliveryReportReceived",
                "status": "Delivered",
                "rawStatus": "Delivered",
                "detail": "No error.",
            }
        ],
    }
    console = Console(width=80, record=True)
    console.print(history_table(view))
    text = console.export_text()
    assert "2026-11-28 10:00:00.123" in text and "2026-11-28 10:00:02.500" in text
    assert "SMSDeliveryReportReceived" in text.replace("\n", "").replace("│", "").replace(" ", "")
    assert max(len(line) for line in text.splitlines()) <= 80


def test_history_of_a_chain_names_each_message_and_the_outcome() -> None:
    """A fallback chain's history shows which message each line is about, and the chain's outcome."""
    from rich.console import Console

    from contactmsg.views import history_table

    chain = [
        {"id": "wa-1", "channel": "whatsapp", "status": "Failed"},
        {"id": "wa-1.fb1", "channel": "sms", "status": "Delivered"},
    ]
    view = {
        "id": "wa-1",
        "chain": chain,
        "chainOutcome": "delivered by sms after whatsapp failed",
        "transitions": [
            {"at": "2026-11-28T10:00:01.0000000Z", "status": "Failed", "message": "wa-1", "channel": "whatsapp"},
            {"at": "2026-11-28T10:00:02.0000000Z", "status": "Sent", "message": "wa-1.fb1", "channel": "sms"},
        ],
        "events": [],
    }
    console = Console(width=100, record=True)
    console.print(history_table(view))
    text = console.export_text()
    assert "delivered by sms after whatsapp failed" in text
    failed = next(line for line in text.splitlines() if "Failed" in line and "10:00:01" in line)
    sent = next(line for line in text.splitlines() if "Sent" in line)
    assert "whatsapp wa-1" in failed and "sms wa-1.fb1" in sent


def test_the_report_shows_fees_per_outcome_and_each_fallback_chain_once() -> None:
    """`contactmsg report`: the per-message table with its fees, then the chains by their channels."""
    from rich.console import Console

    from contactmsg.views import report_view

    data = {
        "since": "2026-12-03T00:00:00Z",
        "runs": 2,
        "cohort": {"whatsapp|Failed": 2, "sms|Delivered": 2},
        "costs": {"whatsapp|Failed": 0.01, "sms|Delivered": 0.015},
        "chains": {"whatsapp>sms|Delivered": 2},
        "chainCosts": {"whatsapp>sms|Delivered": 0.025},
        "reportedShare": 1.0,
        "reported": 4,
        "total": 4,
        "worstP95Ms": None,
        "withinSla": 0,
        "awaitingReconcile": 0,
    }
    console = Console(width=100, record=True)
    console.print(report_view(data))
    lines = console.export_text().splitlines()
    assert any("whatsapp" in line and "Failed" in line and "0.0100" in line for line in lines)
    chain = [line for line in lines if "whatsapp → sms" in line]
    assert len(chain) == 1 and "Delivered" in chain[0] and "0.0250" in chain[0]
