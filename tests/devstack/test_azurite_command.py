"""How the stack starts Azurite: the access log only where somebody can read it."""

from __future__ import annotations

from pathlib import Path

from devstack.azurite import Azurite


def test_azurite_without_a_log_file_writes_no_access_log() -> None:
    assert "--silent" in Azurite().command()


def test_azurite_with_a_log_file_keeps_its_access_log(tmp_path: Path) -> None:
    command = Azurite(log_path=tmp_path / "azurite.log").command()
    assert "--silent" not in command
    assert "--skipApiVersionCheck" in command
