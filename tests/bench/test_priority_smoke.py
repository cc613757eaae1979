"""Smoke test of bench/priority.py at a tiny size: it runs end to end and writes the record the issue asks
for. Timings are never asserted (the figures at this size mean nothing)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import priority
from devstack.azurite import Azurite


def test_priority_benchmark_writes_its_result(azurite: Azurite, tmp_path: Path) -> None:
    argv = ["--backlog", "40", "--high", "3", "--results-dir", str(tmp_path), "--log-dir", str(tmp_path / "logs")]
    returned = priority.main([*argv, "--storage", azurite.connection_string])
    record = json.loads((tmp_path / "priority.json").read_text())
    assert record == returned
    assert record["name"] == "priority latency" and record["unit"] == "s"
    assert record["value"] > 0 and record["p50"] > 0 and record["p50"] <= record["value"]
    assert record["bulk_ratio"] > 0
    assert (record["backlog"], record["high"]) == (40, 3)
    assert {"cpu_count", "python", "platform"} <= record["machine"].keys()


def test_p99_is_the_nearest_rank_and_a_stall_marks_only_the_requests_it_overlapped() -> None:
    from bench.stall import Window

    values = [float(i) for i in range(1, 101)]
    assert (priority._pct(values, 0.99), priority._pct(values, 0.5), priority._pct(values, 1.0)) == (99, 50, 100)
    assert priority._pct([3.0], 0.99) == 3.0
    run = {"high_windows": [Window(0, 1), Window(5, 6)], "stalls": [Window(2, 4)]}
    assert priority._stalled_share(run) == 0
    assert priority._stalled_share(run | {"stalls": [Window(5.5, 9)]}) == 0.5
    assert priority._in_stall(Window(5, 6), [Window(5.5, 9)]) and not priority._in_stall(Window(0, 1), [Window(2, 4)])
