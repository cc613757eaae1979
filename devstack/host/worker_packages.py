"""Install "worker-bundled" packages into a folder the runner can put ahead of the app's packages.

Why: on Python <= 3.12 the Python worker imports its own bundled libraries (azure-functions among
them) ahead of the app's unless PYTHON_ISOLATE_WORKER_DEPENDENCIES is set, so an app that uses an
attribute only a newer azure-functions has fails in Azure and nowhere else. `python -m devstack.host
--worker-packages DIR` reproduces that order; this module fills DIR from a pinned requirements file:

    python -m devstack.host.worker_packages requirements-worker-oldest.txt .devstack/worker-oldest

Only the pinned packages are installed (`--no-deps`): the point is to shadow those, and nothing else.
The folder is rebuilt when the requirements file changes, and left alone otherwise.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

STAMP = ".requirements"


def ensure_installed(requirements: Path, target: Path) -> Path:
    """`target`, holding exactly what `requirements` pins (installed now unless it already is)."""
    wanted = requirements.read_text(encoding="utf-8")
    stamp = target / STAMP
    if stamp.exists() and stamp.read_text(encoding="utf-8") == wanted:
        return target
    shutil.rmtree(target, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]
    command += ["--target", str(target), "-r", str(requirements)]
    subprocess.run(command, check=True)  # noqa: S603 - fixed argv, no shell
    stamp.write_text(wanted, encoding="utf-8")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m devstack.host.worker_packages REQUIREMENTS TARGET_DIR", file=sys.stderr)
        return 2
    print(ensure_installed(Path(args[0]), Path(args[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
