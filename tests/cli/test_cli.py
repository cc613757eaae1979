"""Every `contactmsg` command, against real Azurite and the ACS emulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from typer.testing import CliRunner

from contactmsg.context import Exit
from contactmsg.main import app
from devstack.acs import AcsEmulator
from devstack.azurite import Azurite
from shared.runtime import Services, build_services
from shared.settings import load_settings
from tests.bodies import sms
from tests.integration.conftest import app_env

T = TypeVar("T")
runner = CliRunner()


@pytest.fixture(scope="module")
def acs_cli() -> Iterator[AcsEmulator]:
    emulator = AcsEmulator(report_delay=0.05).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def settings_file(tmp_path: Path, azurite: Azurite, acs_cli: AcsEmulator) -> Path:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": app_env(azurite, acs_cli)}))
    return path


def cli(settings_file: Path, *args: str) -> Any:
    return runner.invoke(app, ["--settings", str(settings_file), *args])


def with_services(settings_file: Path, action: Callable[[Services], Awaitable[T]]) -> T:
    values = json.loads(settings_file.read_text())["Values"]

    async def main() -> T:
        svc = await build_services(load_settings(values))
        try:
            return await action(svc)
        finally:
            await svc.close()

    return asyncio.run(main())


def test_help_lists_every_command() -> None:
    """`--help` names every command an operator needs."""
    result = runner.invoke(app, ["--help"])
    for command in (
        "send",
        "status",
        "history",
        "report",
        "dead-letters",
        "optout",
        "erase",
        "reconcile",
        "pause",
        "resume",
        "stack",
    ):
        assert command in result.output


def test_send_records_accepted_and_status_shows_it(settings_file: Path) -> None:
    """`send` validates, records Accepted and enqueues; `status --json` reads it back masked."""
    sent = cli(settings_file, "--json", "send", "sms", "+14255550123", "--text", "hello", "--id", "cli-1")
    assert sent.exit_code == 0, sent.output
    status = cli(settings_file, "--json", "status", "cli-1")
    view = json.loads(status.output)
    assert view["status"] == "Accepted" and view["recipientMasked"] == "+1******0123"
    assert "hello" not in status.output


def test_send_with_a_bad_number_exits_4_with_the_field(settings_file: Path) -> None:
    """An invalid request exits with code 4 and names the field."""
    result = cli(settings_file, "send", "sms", "12345", "--text", "x")
    assert result.exit_code == Exit.INVALID
    assert "to" in result.output


def test_send_priority_high_goes_to_the_priority_lane(settings_file: Path) -> None:
    """`send --priority high` queues on `<queue>-priority`, the lane a trigger of its own drains."""
    sent = cli(settings_file, "send", "sms", "+14255550123", "--text", "code 1234", "--priority", "high")
    assert sent.exit_code == 0, sent.output

    async def depths(svc: Services) -> tuple[int, int]:
        assert svc.priority_lane is not None
        return await svc.outbound.depth(), await svc.priority_lane.depth()

    assert with_services(settings_file, depths) == (0, 1)


def test_send_with_an_unknown_priority_exits_4_with_the_field(settings_file: Path) -> None:
    """Only normal and high exist: anything else is a field error, not a silent normal send."""
    result = cli(settings_file, "send", "sms", "+14255550123", "--text", "x", "--priority", "urgent")
    assert result.exit_code == Exit.INVALID
    assert "priority" in result.output


def test_status_of_an_unknown_id_exits_1(settings_file: Path) -> None:
    """Scripts can tell 'no such message' from failure."""
    assert cli(settings_file, "status", "nope").exit_code == Exit.NOT_FOUND


def test_history_lists_transitions(settings_file: Path) -> None:
    """`history --json` lists the Accepted transition with its time."""
    cli(settings_file, "send", "sms", "+14255550123", "--text", "x", "--id", "hist-1")
    data = json.loads(cli(settings_file, "--json", "history", "hist-1").output)
    assert [t["status"] for t in data["transitions"]] == ["Accepted"]


def test_replay_needs_an_operator_and_a_reason(settings_file: Path) -> None:
    """Replay without --operator is refused; without --reason it is a usage error."""
    assert cli(settings_file, "dead-letters", "replay", "x", "--reason", "r").exit_code == Exit.USAGE
    assert cli(settings_file, "dead-letters", "replay", "x", "--operator", "ops").exit_code == Exit.USAGE


def test_dead_letters_list_show_and_replay_with_audit(settings_file: Path) -> None:
    """A dead-lettered message is listed, shown, replayed once, and the audit names the operator."""

    async def dead_letter(svc: Services) -> None:
        await svc.intake.submit(sms("dl-1"))
        await svc.dead_letters.record(sms("dl-1"), "q", "max dequeue count")

    with_services(settings_file, dead_letter)
    listed = json.loads(cli(settings_file, "--json", "dead-letters", "list").output)
    assert [m["id"] for m in listed["messages"]] == ["dl-1"]
    assert json.loads(cli(settings_file, "dead-letters", "show", "dl-1").output)["status"] == "DeadLettered"
    args = ("--json", "dead-letters", "replay", "--all", "--operator", "ops@example.com", "--reason", "provider fixed")
    assert json.loads(cli(settings_file, *args).output) == [{"id": "dl-1", "action": "requeued"}]
    assert json.loads(cli(settings_file, *args).output) == []
    audit = with_services(settings_file, lambda svc: svc.audit.entries())
    assert [(a["Actor"], a["Action"], a["Reason"]) for a in audit] == [("ops@example.com", "replay", "provider fixed")]


def test_optout_add_check_remove(settings_file: Path) -> None:
    """An operator opt-out blocks the address (exit 1 on check) until it is removed."""
    base = ("sms", "+14255550199", "--operator", "ops", "--reason", "asked by phone")
    assert cli(settings_file, "optout", "add", *base).exit_code == 0
    assert cli(settings_file, "optout", "check", "sms", "+14255550199").exit_code == Exit.NOT_FOUND
    assert cli(settings_file, "optout", "remove", *base).exit_code == 0
    assert cli(settings_file, "optout", "check", "sms", "+14255550199").exit_code == 0


def test_erase_leaves_no_trace_of_the_address(settings_file: Path) -> None:
    """After `erase`, no table row contains the address."""
    cli(settings_file, "send", "sms", "+14255550188", "--text", "x", "--id", "erase-1")
    result = cli(settings_file, "erase", "--recipient", "+14255550188", "--operator", "dpo", "--reason", "request")
    assert result.exit_code == 0, result.output

    async def dump(svc: Services) -> str:
        rows = []
        for name in svc.names.all():
            rows += [r async for r in svc.storage.table(name).query("PartitionKey ne ''")]
        return json.dumps(rows, default=str)

    assert "+14255550188" not in with_services(settings_file, dump)


def test_reconcile_prints_a_summary(settings_file: Path) -> None:
    """`reconcile --json` runs one pass and prints its summary as structured data."""
    data = json.loads(cli(settings_file, "--json", "reconcile").output)
    assert data["poisonDepth"] == 0 and data["actions"] == {} and data["cohort"] == {}


def test_pause_and_resume_are_audited(settings_file: Path) -> None:
    """Pause and resume each write an audit entry with the operator and reason."""
    cli(settings_file, "pause", "sms", "--operator", "oncall", "--reason", "carrier incident")
    cli(settings_file, "resume", "sms", "--operator", "oncall", "--reason", "carrier ok")
    audit = with_services(settings_file, lambda svc: svc.audit.entries())
    assert [(a["Action"], a["Subject"]) for a in audit] == [("pause", "sms"), ("resume", "sms")]


def test_report_reads_reconcile_summaries(settings_file: Path) -> None:
    """`report --json` aggregates the summaries that reconcile wrote."""
    cli(settings_file, "reconcile")
    data = json.loads(cli(settings_file, "--json", "report", "--since", "1h").output)
    assert data["runs"] == 1


def test_report_rejects_a_bad_window(settings_file: Path) -> None:
    """A window that is not like 30m/6h/2d is an error, not a crash."""
    assert cli(settings_file, "report", "--since", "soon").exit_code != 0
