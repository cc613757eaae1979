"""`contactmsg feed status` and `contactmsg feed replay`, against real Azurite, the ACS emulator and the
local Event Grid topic (issue 17)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contactmsg.context import Exit
from devstack.acs import AcsEmulator
from devstack.azurite import Azurite
from devstack.eventgrid import DEFAULT_KEY, LocalTopic, TopicSettings
from shared.runtime import Services
from shared.schema import AUDIT_PARTITION
from shared.services.decoding import QueueDelivery
from tests.bodies import sms
from tests.cli.test_cli import cli, with_services
from tests.integration.conftest import app_env


@pytest.fixture(scope="module")
def feed_acs() -> Iterator[AcsEmulator]:
    emulator = AcsEmulator(report_delay=0.05).start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def cli_topic() -> Iterator[LocalTopic]:
    with LocalTopic(TopicSettings()) as instance:
        yield instance


@pytest.fixture
def fed_settings(tmp_path: Path, azurite: Azurite, feed_acs: AcsEmulator, cli_topic: LocalTopic) -> Path:
    path = tmp_path / "local.settings.json"
    values = app_env(azurite, feed_acs, FEED_TOPIC_ENDPOINT=cli_topic.endpoint, FEED_TOPIC_KEY=DEFAULT_KEY)
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    return path


def test_feed_commands_say_the_feed_is_off_without_a_topic(
    tmp_path: Path, azurite: Azurite, feed_acs: AcsEmulator
) -> None:
    off = tmp_path / "off.settings.json"
    off.write_text(json.dumps({"IsEncrypted": False, "Values": app_env(azurite, feed_acs)}))
    result = cli(off, "feed", "status")
    assert result.exit_code == Exit.FAILED
    assert "FEED_TOPIC_ENDPOINT" in result.output


def test_feed_status_shows_the_backlog_and_the_last_publish_error(fed_settings: Path, cli_topic: LocalTopic) -> None:
    cli_topic.fail_publishes(503, 100)

    async def send(svc: Services) -> None:
        await svc.sending.handle(QueueDelivery(sms("cli-feed-1"), "q", 1))
        assert svc.feed is not None
        await svc.feed.drain()

    try:
        with_services(fed_settings, send)
    finally:
        cli_topic.clear_faults()
    result = cli(fed_settings, "--json", "feed", "status")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["pendingMessages"] >= 1 and data["oldestPendingDue"]
    assert "503" in data["lastError"]["reason"]


def test_feed_replay_republishes_and_is_audited(fed_settings: Path) -> None:
    async def send(svc: Services) -> None:
        await svc.sending.handle(QueueDelivery(sms("cli-feed-2"), "q", 1))
        assert svc.feed is not None
        await svc.feed.drain()

    with_services(fed_settings, send)
    result = cli(
        fed_settings, "--json", "feed", "replay", "--since", "1h", "--reason", "crm lost a day", "--operator", "ops"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["replayed"] >= 3  # Accepted, Sending, Sent

    async def audit(svc: Services) -> list[dict[str, Any]]:
        table = svc.storage.table(svc.names.audit)
        return [r async for r in table.query("PartitionKey eq @pk", {"pk": AUDIT_PARTITION})]

    entries = with_services(fed_settings, audit)
    assert any(e.get("Action") == "feed-replay" and e.get("Actor") == "ops" for e in entries)
    assert cli(fed_settings, "feed", "replay", "--since", "yesterday", "--reason", "x").exit_code == Exit.USAGE
