"""`RunnerProcess`: start `python -m devstack.host` as a subprocess and wait until it is Running.

Why a subprocess: tests and launchers need what a developer gets from `func start` — a separate
process with its own environment that can be stopped with SIGTERM (graceful) or SIGKILL (crash) —
and a log file to read afterwards. `--port 0` plus a ready file avoids racing for free ports.

    with RunnerProcess(app_dir, env={"IN_QUEUE": "orders"}, storage=conn) as runner:
        requests.get(runner.url + "/api/health")
    print(runner.log_path.read_text())
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class RunnerError(RuntimeError):
    """The runner exited or did not reach the Running state in time."""


@dataclass
class RunnerProcess:
    """One runner subprocess; `start()` (or `with`) returns once /admin/host/status says Running."""

    app_dir: Path
    port: int = 0
    env: Mapping[str, str] = field(default_factory=dict)
    storage: str | None = None
    host_id: str | None = None
    grace_period: float = 10.0
    log_path: Path | None = None
    extra_args: Sequence[str] = ()
    startup_timeout: float = 30.0
    # Where the runner starts, and whether the project goes on PYTHONPATH (a launcher that finds the
    # runner some other way, e.g. an installed copy, sets it False).
    cwd: Path = PROJECT_ROOT
    project_on_pythonpath: bool = True
    url: str = field(default="", init=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)
    _workdir: Path | None = field(default=None, init=False, repr=False)

    def command(self, ready_file: Path) -> list[str]:
        cmd = [sys.executable, "-m", "devstack.host", "--app-dir", str(Path(self.app_dir).resolve())]
        cmd += ["--port", str(self.port), "--grace-period", str(self.grace_period), "--ready-file", str(ready_file)]
        if self.storage:
            cmd += ["--storage", self.storage]
        if self.host_id:
            cmd += ["--host-id", self.host_id]
        return [*cmd, *self.extra_args]

    def start(self) -> RunnerProcess:
        self._workdir = Path(tempfile.mkdtemp(prefix="devstack-host-"))
        if self.log_path is None:
            self.log_path = self._workdir / "runner.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        ready_file = self._workdir / "ready.json"
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            self.command(ready_file),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            env=self._environment(),
        )
        self.url = self._wait_until_running(ready_file)
        return self

    def _environment(self) -> dict[str, str]:
        environment = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        if self.project_on_pythonpath:
            paths = [str(PROJECT_ROOT), environment.get("PYTHONPATH")]
            environment["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
        return environment

    def _wait_until_running(self, ready_file: Path) -> str:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            self._raise_if_exited()
            if ready_file.exists():
                url = str(json.loads(ready_file.read_text(encoding="utf-8"))["url"])
                if self._state(url) == "Running":
                    return url
            time.sleep(0.05)
        self.kill()
        raise RunnerError(f"runner did not reach Running within {self.startup_timeout:.0f}s; log:\n{self.logs()}")

    def _state(self, url: str) -> str | None:
        try:
            with urllib.request.urlopen(f"{url}/admin/host/status", timeout=2) as response:  # noqa: S310 - loopback
                body: dict[str, Any] = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None
        return str(body.get("state"))

    def _raise_if_exited(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise RunnerError(f"runner exited with code {self._process.returncode}; log:\n{self.logs()}")

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def terminate(self, timeout: float | None = None) -> int:
        """SIGTERM (graceful stop) and wait; the default wait covers the grace period."""
        return self._signal(signal.SIGTERM, timeout if timeout is not None else self.grace_period + 15)

    def kill(self) -> int:
        """SIGKILL: a crash, nothing is completed."""
        return self._signal(signal.SIGKILL, 10)

    def _signal(self, signum: int, timeout: float) -> int:
        process = self._process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signum)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return process.returncode

    def logs(self) -> str:
        if self._log is not None:
            self._log.flush()
        return (
            self.log_path.read_text(encoding="utf-8", errors="replace")
            if self.log_path and self.log_path.exists()
            else ""
        )

    def __enter__(self) -> RunnerProcess:
        return self if self._process is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.terminate()
