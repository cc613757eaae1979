"""Run every benchmark at its default size, then tabulate all results in `bench/results/README.md`.

`BENCHMARKS` names each run and the module (with arguments) behind it; a new benchmark is added here
when its module lands. Each module exposes `main(argv)`, takes `--results-dir` and writes
`<results-dir>/<name>.json` (throughput also writes memory.json; side_by_side writes baseline.json).
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR

BENCHMARKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "events": ("events", ()),
    "reconcile": ("reconcile", ()),
    "coldstart": ("coldstart", ()),
    "throughput": ("throughput", ()),
    # The same pairs with the provider's round trips; no target against the floor, so fewer pairs.
    "throughput-realistic": ("throughput", ("--provider-latency", "realistic", "--repeats", "3")),
    # The status feed on against off (issue 17); after "throughput", whose floor it is also compared with.
    # Five pairs, as for throughput: its target (0.9) sits within the spread of single pairs here.
    "throughput-feed": ("throughput", ("--feed",)),
    "side_by_side": ("side_by_side", ()),
    # High-priority requests behind a normal backlog (issue 19).
    "priority": ("priority", ()),
    # Every billable operation of a mixed run, per message, against the floor's (issue 19).
    "cost": ("cost", ()),
    "soak": ("soak", ()),
}
COLUMNS = ("name", "value", "floor", "ratio", "unit", "target", "code", "machine")


def load_results(results_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(results_dir.glob("*.json"))]


def cell(record: dict[str, Any], column: str) -> str:
    value = record.get(column)
    if value is None:  # e.g. no target for this variant
        return ""
    if column == "machine" and isinstance(value, dict):
        return f"{value.get('cpu_count')} cpu, Python {value.get('python')}, {value.get('platform')}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(records: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r, c) for c in COLUMNS) + " |" for r in records]
    return "\n".join(lines)


def write_readme(results_dir: Path, records: list[dict[str, Any]]) -> Path:
    readme = results_dir / "README.md"
    readme.write_text(
        "# Benchmark results\n\n"
        "Latest figures, written by `python -m bench.run_all`. Each value is compared with a floor measured\n"
        "in the same run on the same machine; the ratio is what the target applies to (see each module's\n"
        "docstring in `bench/`).\n\n" + table(records) + "\n"
    )
    return readme


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    names = list(BENCHMARKS)
    cli.add_argument("--only", nargs="+", choices=names, default=names, help="run these (default: all)")
    args = cli.parse_args(argv)
    for name in args.only:
        print(f"== {name}")
        module, extra = BENCHMARKS[name]
        importlib.import_module(f"bench.{module}").main([*extra, "--results-dir", str(args.results_dir)])
    records = load_results(args.results_dir)
    print(table(records))
    print(f"wrote {write_readme(args.results_dir, records)}")
    return records


if __name__ == "__main__":
    main()
