"""`contactmsg templates list`, against real Azurite and the ACS emulator's template list (issue 18)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import acs_cli, cli, settings_file  # noqa: F401  (fixtures)
from tests.integration.conftest import WHATSAPP_CHANNEL


def test_templates_list_shows_each_state_and_the_body_parameters(settings_file: Path) -> None:  # noqa: F811
    """--json lists every template of the configured channel with its state and body parameters."""
    result = cli(settings_file, "--json", "templates", "list")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert {row["state"] for row in rows.values()} == {"approved", "pending", "paused", "rejected"}
    assert rows["order_update"] == {
        "channel": WHATSAPP_CHANNEL,
        "name": "order_update",
        "language": "en_US",
        "state": "approved",
        "approved": True,
        "bodyParameters": ["1", "2"],
    }


def test_templates_list_takes_a_channel_and_prints_a_table(settings_file: Path) -> None:  # noqa: F811
    """--channel asks about that channel; the table names each template and its state."""
    result = cli(settings_file, "templates", "list", "--channel", "other-channel")
    assert result.exit_code == 0, result.output
    assert "spring_sale" in result.output and "paused" in result.output and "other-channel" in result.output
