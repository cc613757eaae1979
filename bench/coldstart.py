"""Cold start: seconds to import `function_app` in a fresh interpreter, against `azure.functions` alone.

The Functions host indexes the app by importing it, and every cold instance pays that import before
its first invocation. Any Python function app imports `azure.functions`, so importing it alone is the
floor: the difference is the app's own import cost. Each import is timed with `time.perf_counter`
inside a fresh `python -c` (cwd = repo root), the two interleaved `--repeats` times; medians are taken.
ratio = value / floor; target <= 2. Over target, `python -X importtime` attributes the extra time to
the packages loaded beyond `azure.functions`, and to the app module that first imported each.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections import Counter
from typing import Any

from bench.common import REPO_ROOT, parser, verdict, write_result

NAME = "coldstart"
TARGET = "<= 2"
NAMESPACES = {"azure", "opentelemetry", "google"}
TIMER = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def import_seconds(module: str) -> float:
    code = TIMER.format(module=module)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)  # noqa: S603
    return float(done.stdout.strip().splitlines()[-1])


def import_tree(module: str) -> list[tuple[str, str | None, int]]:
    """(module, nearest app module that imported it, self microseconds) from `-X importtime`."""
    command = [sys.executable, "-X", "importtime", "-c", f"import {module}"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True)  # noqa: S603
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:") and "[us]" not in line]
    rows: list[tuple[str, str | None, int]] = []
    importers: dict[int, str | None] = {-1: None}
    for line in reversed(lines):  # post-order reversed: each parent comes before its children
        self_us, _, name = line.removeprefix("import time:").split("|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        name = name.strip()
        own = name == "function_app" or name.startswith("shared.")
        importers[depth] = name if own else importers[depth - 1]
        rows.append((name, importers[depth - 1] if not own else name, int(self_us)))
    return rows


def package_of(module: str) -> str:
    """The distribution-level name: `aiohttp`, `azure.storage`, or an app module itself."""
    parts = module.split(".")
    if module == "function_app" or parts[0] == "shared":
        return module
    return ".".join(parts[:2]) if parts[0] in NAMESPACES else parts[0]


def heaviest_imports(top: int = 10) -> dict[str, Any]:
    """Self time of modules `function_app` loads beyond `azure.functions`: in total, by (importer,
    package), and by the app module that first imported them."""
    floor_modules = {name for name, _, _ in import_tree("azure.functions")}
    cost: Counter[tuple[str, str]] = Counter()
    for name, importer, self_us in import_tree("function_app"):
        if name not in floor_modules:
            cost[(importer or "?", package_of(name))] += self_us
    by_importer: Counter[str] = Counter()
    for (importer, _), us in cost.items():
        by_importer[importer] += us
    return {
        "total_ms": round(sum(cost.values()) / 1000, 1),
        "by_package": [
            {"importer": i, "package": p, "ms": round(us / 1000, 1)} for (i, p), us in cost.most_common(top)
        ],
        "by_importer": [{"importer": i, "ms": round(us / 1000, 1)} for i, us in by_importer.most_common(top)],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cli = parser(__doc__ or NAME)
    cli.add_argument("--repeats", type=int, default=7, help="fresh interpreters per import (median taken)")
    args = cli.parse_args(argv)
    app, floor = [], []
    for _ in range(args.repeats):
        app.append(import_seconds("function_app"))
        floor.append(import_seconds("azure.functions"))
    value, floor_value = statistics.median(app), statistics.median(floor)
    heavy = heaviest_imports() if value / floor_value > float(TARGET.split()[1]) else {}
    record = write_result(
        args.results_dir,
        NAME,
        value,
        floor_value,
        "s",
        target=TARGET,
        repeats=args.repeats,
        heaviest_imports=heavy,
    )
    print(f"import function_app:     {value * 1000:7.1f} ms (median of {args.repeats})")
    print(f"import azure.functions:  {floor_value * 1000:7.1f} ms (floor)")
    print(verdict(record["ratio"], TARGET))
    if heavy:
        print(f"-X importtime: {heavy['total_ms']} ms of self time beyond azure.functions; heaviest packages:")
        for item in heavy["by_package"]:
            print(f"  {item['ms']:7.1f} ms  {item['package']:<24} first imported by {item['importer']}")
        print("by the app module whose import pulled them in:")
        for item in heavy["by_importer"]:
            print(f"  {item['ms']:7.1f} ms  {item['importer']}")
    return record


if __name__ == "__main__":
    main()
