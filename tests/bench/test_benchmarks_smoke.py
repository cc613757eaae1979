"""Smoke tests: each benchmark runs end to end at a tiny size and writes a sane results file.

These check the plumbing only (files, fields, the ratio's definition); timings are never asserted.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from bench import coldstart, events, reconcile, run_all
from bench.common import write_result
from devstack.azurite import Azurite


def _read(results_dir: Path, name: str) -> dict[str, Any]:
    record = json.loads((results_dir / f"{name}.json").read_text())
    assert record["name"] == name
    assert record["value"] > 0
    assert record["floor"] > 0
    assert record["ratio"] == pytest.approx(record["value"] / record["floor"])
    assert isinstance(record["unit"], str) and record["unit"]
    assert {"cpu_count", "python", "platform"} <= record["machine"].keys()
    return record


def _counted_ratios(runs: list[dict[str, Any]]) -> list[float]:
    """The ratios of the pairs the reported figure is taken from: those clear of Azurite's clean-up
    stall. The session's shared Azurite has swept every test's messages by then, so a pair may meet a
    stall and be run again; the count of clean pairs is what --repeats asks for."""
    return sorted(run["ratio"] for run in runs if run["clean"])


def test_events_benchmark_writes_its_result(azurite: Azurite, tmp_path: Path) -> None:
    """Reports recorded through EventService against raw transactions, as events/s."""
    returned = events.main(
        ["--n", "50", "--concurrency", "4", "--results-dir", str(tmp_path), "--storage", azurite.connection_string]
    )
    record = _read(tmp_path, "events")
    assert record == returned
    assert record["unit"] == "events/s"
    assert (record["n"], record["concurrency"]) == (50, 4)


def test_reconcile_benchmark_writes_its_result(azurite: Azurite, tmp_path: Path) -> None:
    """Reconcile with a small and a large history: seconds, large over small."""
    argv = ["--small", "50", "--large", "200", "--due", "10", "--repeats", "2"]
    reconcile.main([*argv, "--results-dir", str(tmp_path), "--storage", azurite.connection_string])
    record = _read(tmp_path, "reconcile")
    assert record["unit"] == "s"
    assert (record["small"], record["large"], record["due"]) == (50, 200, 10)
    assert len(record["runs"]["small"]) == len(record["runs"]["large"]) == 2
    assert record["point_read_ms"]["small"] > 0 and record["point_read_ms"]["large"] > 0
    assert record["raw_requests_s"]["small"] > 0 and record["raw_requests_ratio"] > 0


def test_coldstart_benchmark_writes_its_result(tmp_path: Path) -> None:
    """Import of function_app against azure.functions, in fresh interpreters."""
    coldstart.main(["--repeats", "2", "--results-dir", str(tmp_path)])
    record = _read(tmp_path, "coldstart")
    assert record["unit"] == "s"
    assert record["repeats"] == 2
    if record["ratio"] > 2:
        assert record["heaviest_imports"]["by_package"]


def test_run_all_lists_only_modules_that_exist() -> None:
    for module, _ in run_all.BENCHMARKS.values():
        assert callable(importlib.import_module(f"bench.{module}").main)


def test_run_all_tabulates_every_result(tmp_path: Path) -> None:
    """The README table has one row per results file, with the machine."""
    write_result(tmp_path, "alpha", 2.0, 4.0, "s")
    write_result(tmp_path, "beta", 3.0, 1.5, "ops/s", ratio=0.5)
    records = run_all.load_results(tmp_path)
    readme = run_all.write_readme(tmp_path, records).read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| name | value | floor | ratio | unit")
    assert [row.split(" | ")[0] for row in rows[1:]] == ["| alpha", "| beta"]
    assert "cpu" in rows[1] and "Python" in rows[1]


def test_throughput_benchmark_writes_throughput_and_memory(azurite: Azurite, tmp_path: Path) -> None:
    """The pipeline through the runner against the storage floor, plus the runner's peak RSS."""
    from bench import throughput

    argv = ["--n", "30", "--repeats", "2", "--results-dir", str(tmp_path), "--storage", azurite.connection_string]
    assert throughput.main(argv) == 0
    record = _read(tmp_path, "throughput")
    ratios = _counted_ratios(record["runs"])
    assert len(ratios) == 2 and abs(record["ratio"] - ratios[0]) < 0.001  # the lower middle of two
    assert record["unit"] == "msg/s" and record["n"] == 30 and record["duplicate_sends"] == 0
    assert record["p95_enqueue_to_sent_ms"] >= record["p50_enqueue_to_sent_ms"] > 0
    cpu = record["cpu_ms_per_message"]  # Azurite is not listed: the test passes its own storage
    assert cpu["pipeline"]["runner"] > 0 and cpu["floor"]["client"] > 0
    parts = sum(v for k, v in cpu["pipeline"].items() if k != "total")
    assert abs(cpu["pipeline"]["total"] - parts) < 0.05  # the shares add up (each rounded to 0.01)
    memory = _read(tmp_path, "memory")
    assert memory["unit"] == "MB" and memory["value"] >= memory["floor"]


def test_design_floor_writes_the_median_of_alternating_pairs(azurite: Azurite, tmp_path: Path) -> None:
    """`--design-floor`: the floor plus the design's extra storage requests, against the floor alone."""
    from bench import throughput

    argv = ["--design-floor", "--n", "30", "--repeats", "3", "--results-dir", str(tmp_path)]
    assert throughput.main([*argv, "--storage", azurite.connection_string]) == 0
    record = _read(tmp_path, "throughput-design-floor")
    ratios = _counted_ratios(record["runs"])
    assert len(ratios) == 3 and abs(record["ratio"] - ratios[1]) < 0.001
    assert record["unit"] == "msg/s" and record["n"] == 30


def test_throughput_with_worker_processes_counts_their_memory(azurite: Azurite, tmp_path: Path) -> None:
    """`--workers 2` runs the runner with two worker processes; their memory is part of the peak."""
    from bench import throughput

    argv = ["--n", "20", "--workers", "2", "--repeats", "1", "--results-dir", str(tmp_path)]
    argv += ["--storage", azurite.connection_string]
    assert throughput.main(argv) == 0
    record = _read(tmp_path, "throughput-2-workers")
    assert record["worker_processes"] == 2 and record["duplicate_sends"] == 0
    single_process_idle_mb = 60  # one runner process with the app loaded measures 80-90 MB
    assert _read(tmp_path, "memory-2-workers")["floor"] > 2 * single_process_idle_mb


def test_throughput_with_realistic_provider_latency(azurite: Azurite, tmp_path: Path) -> None:
    """`--provider-latency realistic`: its own results file, the profile recorded, every pair judged for
    Azurite's stall, and no target (the floor has no provider in it)."""
    from bench import throughput

    argv = ["--n", "30", "--repeats", "1", "--provider-latency", "realistic", "--results-dir", str(tmp_path)]
    assert throughput.main([*argv, "--storage", azurite.connection_string]) == 0
    record = _read(tmp_path, "throughput-realistic-latency")
    assert record["provider_latency"]["profile"] == "realistic"
    assert record["target"] is None and record["duplicate_sends"] == 0
    pair = record["runs"][-1]
    assert {"pipeline", "floor"} == set(pair["stall"]) and isinstance(pair["clean"], bool)
    assert record["ratio_from"].startswith("median of")


def test_throughput_with_the_status_feed_on_against_off(azurite: Azurite, tmp_path: Path) -> None:
    """`--feed`: the pipeline with the status feed on (publishing to a local topic, delivered to a webhook)
    against the same pipeline with it off; the subscriber received the feed of the measured runs."""
    from bench import throughput

    argv = ["--feed", "--n", "20", "--repeats", "1", "--results-dir", str(tmp_path)]
    assert throughput.main([*argv, "--storage", azurite.connection_string]) == 0
    record = _read(tmp_path, "throughput-feed")
    assert record["target"] == ">= 0.9" and record["duplicate_sends"] == 0
    assert record["feed_events_received"] >= 20 * 3  # Accepted, Sending and Sent at least, per message
    assert record["runs"][0]["order"] == "feed on first" and record["ratio"] > 0
