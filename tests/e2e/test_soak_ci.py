"""The CI-sized soak: half a minute of faults, a few hundred messages, a runner kill, an Azurite restart."""

from __future__ import annotations

import json
from pathlib import Path

from bench import soak


def test_half_a_minute_of_faults_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    """bench.soak at CI size exits 0 with zero lost, zero duplicate sends, and really killed the runner."""
    argv = ["--minutes", "0.5", "--messages", "240", "--kill-every", "12", "--heal-after", "15"]
    code = soak.main([*argv, "--results-dir", str(tmp_path)])
    result = json.loads((tmp_path / "soak.json").read_text())
    assert code == 0
    assert result["lost"] == [] and result["duplicate_sends"] == 0
    assert result["accepted"] == result["requested"] == 240
    assert result["kills"] >= 1 and result["azurite_restarts"] == 1
