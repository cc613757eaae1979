"""The whole local stack in one object: Azurite, the ACS emulator and the Functions runner with the app.

Why: `make run`, `contactmsg stack start` and the end-to-end tests all need the same three processes
wired together (the runner's storage is Azurite, the app's ACS endpoint is the emulator, the
emulator's Event Grid webhook is the runner). Settings come from `local.settings.json` (or the
sample), with the ports and connection strings of this stack filled in.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devstack.azurite import Azurite, free_port
from devstack.host.process import RunnerProcess

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".devstack"
PIDS_FILE = STATE_DIR / "stack.json"
DEFAULT_PORTS = {"blob": 10000, "queue": 10001, "table": 10002, "acs": 8765, "app": 7071}


def app_settings(root: Path = ROOT) -> dict[str, str]:
    """The app's Values from local.settings.json, else from the committed sample."""
    local = root / "local.settings.json"
    path = local if local.exists() else root / "local.settings.sample.json"
    return {k: str(v) for k, v in json.loads(path.read_text())["Values"].items()}


def _access_key(settings: Mapping[str, str]) -> str:
    parts = dict(p.split("=", 1) for p in settings["ACS_CONNECTION_STRING"].split(";") if "=" in p)
    return {k.lower(): v for k, v in parts.items()}["accesskey"]


@dataclass
class LocalStack:
    ports: dict[str, int]
    data_dir: Path | None = STATE_DIR / "azurite"
    report_delay: float = 1.0
    overrides: dict[str, str] = field(default_factory=dict)
    log_dir: Path = STATE_DIR / "logs"
    azurite: Azurite | None = None
    emulator: subprocess.Popen[bytes] | None = None
    runner: RunnerProcess | None = None
    settings: dict[str, str] = field(default_factory=dict)

    @classmethod
    def default(cls) -> LocalStack:
        return cls(ports=dict(DEFAULT_PORTS))

    @classmethod
    def on_free_ports(cls, **kwargs: object) -> LocalStack:
        return cls(ports={name: free_port() for name in DEFAULT_PORTS}, **kwargs)  # type: ignore[arg-type]

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['app']}"

    @property
    def acs_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['acs']}"

    def start(self) -> LocalStack:
        """Start Azurite, the emulator and the runner, in that order; stop all if any fails."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_azurite()
            self._start_emulator()
            self._start_runner()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_azurite(self) -> None:
        self.azurite = Azurite(
            blob_port=self.ports["blob"],
            queue_port=self.ports["queue"],
            table_port=self.ports["table"],
            data_dir=self.data_dir,
            log_path=self.log_dir / "azurite.log",
        ).start()

    def _start_emulator(self) -> None:
        self.settings = {**app_settings(), **self.overrides}
        self.settings["AzureWebJobsStorage"] = self.azurite.connection_string if self.azurite else ""
        key = _access_key(self.settings)
        self.settings["ACS_CONNECTION_STRING"] = f"endpoint={self.acs_url}/;accesskey={key}"
        webhook = f"{self.app_url}/runtime/webhooks/eventgrid?functionName=record_event"
        log = (self.log_dir / "acs.log").open("ab")
        self.emulator = subprocess.Popen(  # noqa: S603 - fixed argv
            [
                sys.executable,
                "-m",
                "devstack.acs",
                "--port",
                str(self.ports["acs"]),
                "--access-key",
                key,
                "--webhook",
                webhook,
                "--report-delay",
                str(self.report_delay),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        _wait_http(f"{self.acs_url}/admin/health", self.emulator)

    def _start_runner(self) -> None:
        self.runner = RunnerProcess(
            ROOT,
            port=self.ports["app"],
            env=self.settings,
            storage=self.settings["AzureWebJobsStorage"],
            log_path=self.log_dir / "runner.log",
            grace_period=5.0,
        ).start()

    def stop(self) -> None:
        """Stop the runner first (it finishes in-flight work), then the emulator and Azurite."""
        if self.runner is not None:
            self.runner.terminate()
            self.runner = None
        if self.emulator is not None:
            self.emulator.terminate()
            try:
                self.emulator.wait(10)
            except subprocess.TimeoutExpired:
                self.emulator.kill()
            self.emulator = None
        if self.azurite is not None:
            self.azurite.stop()
            self.azurite = None

    def describe(self) -> str:
        return (
            f"app       {self.app_url}  (POST /api/messages, GET /api/messages/{{id}})\n"
            f"acs       {self.acs_url}  (admin: {self.acs_url}/admin/sends)\n"
            f"azurite   blob :{self.ports['blob']}  queue :{self.ports['queue']}  table :{self.ports['table']}\n"
            f"logs      {self.log_dir}"
        )

    def detach(self) -> None:
        """Record the processes so `contactmsg stack stop` can end them later."""
        pids = [
            p
            for p in (
                self.runner.pid if self.runner else None,
                self.emulator.pid if self.emulator else None,
                self.azurite.pid if self.azurite else None,
            )
            if p
        ]
        PIDS_FILE.write_text(json.dumps({"pids": pids}))

    @staticmethod
    def stop_detached() -> int:
        if not PIDS_FILE.exists():
            return 0
        stopped = 0
        for pid in json.loads(PIDS_FILE.read_text())["pids"]:
            try:
                os.kill(pid, signal.SIGTERM)
                stopped += 1
            except ProcessLookupError:
                continue
        PIDS_FILE.unlink()
        return stopped

    def wait_forever(self) -> None:
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            self.stop()


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")
