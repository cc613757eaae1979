"""The whole local stack in one object: Azurite, the ACS emulator and the Functions runner with the app.

Why: `make run`, `contactmsg stack start` and the end-to-end tests all need the same three processes
wired together (the runner's storage is Azurite, the app's ACS endpoint is the emulator, the
emulator's Event Grid webhook is the runner). Settings come from `local.settings.json` (or the
sample), with the ports and connection strings of this stack filled in.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from devstack.acs.config import DEPLOYED_MAX_EVENTS_PER_BATCH
from devstack.azurite import Azurite, free_ports, port_answers
from devstack.host.process import RunnerProcess

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".devstack"
PIDS_FILE = STATE_DIR / "stack.json"
PROC = Path("/proc")
DEFAULT_PORTS = {"blob": 10000, "queue": 10001, "table": 10002, "acs": 8765, "feed": 8766, "app": 7071}
STOP_TIMEOUT = 30.0  # per process: covers the runner's 5 s grace period and its storage clean-up


class StackAlreadyRunning(RuntimeError):
    """Ports this stack needs already answer: another stack (or another Azurite) holds them."""

    def __init__(self, busy: Sequence[str]) -> None:
        self.busy = tuple(busy)
        super().__init__(f"port(s) already in use: {', '.join(self.busy)}")


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
    topic: subprocess.Popen[bytes] | None = None
    runner: RunnerProcess | None = None
    settings: dict[str, str] = field(default_factory=dict)

    @classmethod
    def default(cls) -> LocalStack:
        return cls(ports=dict(DEFAULT_PORTS))

    @classmethod
    def on_free_ports(cls, **kwargs: object) -> LocalStack:
        ports = dict(zip(DEFAULT_PORTS, free_ports(len(DEFAULT_PORTS)), strict=True))
        return cls(ports=ports, **kwargs)  # type: ignore[arg-type]

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['app']}"

    @property
    def acs_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['acs']}"

    @property
    def feed_url(self) -> str:
        """The local Event Grid topic of the status feed (publish at /api/events, admin at /admin)."""
        return f"http://127.0.0.1:{self.ports['feed']}"

    def start(self) -> LocalStack:
        """Start Azurite, the emulator and the runner, in that order; stop all if any fails."""
        self._refuse_busy_ports()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_azurite()
            self._start_emulator()
            self._start_topic()
            self._provision_queues()
            self._start_runner()
        except BaseException:
            self.stop()
            raise
        return self

    def _refuse_busy_ports(self) -> None:
        # Checked before anything starts: Azurite counts as ready once its ports answer, so on ports
        # held by another stack it would look started, and only the runner would fail, deep inside.
        busy = [f"{name} :{port}" for name, port in self.ports.items() if port_answers(port)]
        if busy:
            raise StackAlreadyRunning(busy)

    def _start_azurite(self) -> None:
        self.azurite = Azurite(
            blob_port=self.ports["blob"],
            queue_port=self.ports["queue"],
            table_port=self.ports["table"],
            data_dir=self.data_dir,
            log_path=self.log_dir / "azurite.log",
        ).start()

    def _provision_queues(self) -> None:
        """Create both lanes' queues and their poison queues, as infra/modules/storage.bicep does in Azure: the
        host never creates a trigger queue, and the app creates its queues only on its first invocation,
        so a producer that enqueued right after `stack start` met a 404 from Azurite."""
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.queue import QueueServiceClient

        with QueueServiceClient.from_connection_string(self.settings["AzureWebJobsStorage"]) as service:
            lanes = (self.settings["SEND_QUEUE"], f"{self.settings['SEND_QUEUE']}-priority")
            for name in (queue for lane in lanes for queue in (lane, f"{lane}-poison")):
                with contextlib.suppress(ResourceExistsError):  # a stack started again on kept data
                    service.create_queue(name)

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
                "--max-events-per-batch",
                str(DEPLOYED_MAX_EVENTS_PER_BATCH),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        _wait_http(f"{self.acs_url}/admin/health", self.emulator)

    def _start_topic(self) -> None:
        """The status feed's topic; the app publishes to it (FEED_TOPIC_ENDPOINT) with its key."""
        from devstack.eventgrid import DEFAULT_KEY

        key = self.settings.get("FEED_TOPIC_KEY") or DEFAULT_KEY
        self.settings |= {"FEED_TOPIC_ENDPOINT": f"{self.feed_url}/api/events", "FEED_TOPIC_KEY": key}
        log = (self.log_dir / "eventgrid.log").open("ab")
        argv = [sys.executable, "-m", "devstack.eventgrid", "--port", str(self.ports["feed"]), "--key", key]
        self.topic = subprocess.Popen(  # noqa: S603 - fixed argv
            argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
        _wait_http(f"{self.feed_url}/admin/health", self.topic)

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
        for process in (self.emulator, self.topic):
            if process is not None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
        self.emulator = self.topic = None
        if self.azurite is not None:
            self.azurite.stop()
            self.azurite = None

    def describe(self) -> str:
        return (
            f"app       {self.app_url}  (POST /api/messages, GET /api/messages/{{id}})\n"
            f"acs       {self.acs_url}  (admin: {self.acs_url}/admin/sends)\n"
            f"feed      {self.feed_url}/api/events  (status feed topic; admin: {self.feed_url}/admin/subscriptions)\n"
            f"azurite   blob :{self.ports['blob']}  queue :{self.ports['queue']}  table :{self.ports['table']}\n"
            f"logs      {self.log_dir}"
        )

    def detach(self, path: Path = PIDS_FILE) -> None:
        """Record the processes so `contactmsg stack stop` can end them later, and only them. They are
        recorded in the order they must stop in: runner, emulator, topic, Azurite."""
        pids = [
            p
            for p in (
                self.runner.pid if self.runner else None,
                self.emulator.pid if self.emulator else None,
                self.topic.pid if self.topic else None,
                self.azurite.pid if self.azurite else None,
            )
            if p
        ]
        write_state(path, [ProcessRecord.observe(pid) or ProcessRecord.unverifiable(pid) for pid in pids])

    @staticmethod
    def stop_recorded(path: Path = PIDS_FILE, timeout: float = STOP_TIMEOUT) -> StopReport:
        """End the recorded processes that are still the ones recorded, one at a time in the recorded
        order, each waited for (SIGTERM, then SIGKILL after `timeout` s); forget the record.

        Why one at a time: the runner's graceful stop finishes its work against storage. With Azurite
        signalled at the same moment, that work waits on unreachable storage for over a minute.
        """
        if not path.exists():
            return StopReport()
        outcomes: dict[StopOutcome, list[int]] = {"stopped": [], "killed": [], "stale": []}
        for record in read_state(path):
            outcomes[_stop(record, timeout)].append(record.pid)
        path.unlink()
        return StopReport(
            stopped=tuple(outcomes["stopped"] + outcomes["killed"]),
            stale=tuple(outcomes["stale"]),
            killed=tuple(outcomes["killed"]),
        )

    @staticmethod
    def stop_detached(path: Path = PIDS_FILE) -> int:
        """`stack stop`: end a detached stack; stale entries are left alone and named on stderr."""
        report = LocalStack.stop_recorded(path)
        if report.stale:
            print(report.stale_message(path), file=sys.stderr)
        if report.killed:
            print(f"killed pid {', '.join(map(str, report.killed))}: still running after SIGTERM", file=sys.stderr)
        return len(report.stopped)

    def wait_forever(self) -> None:
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            self.stop()


@dataclass(frozen=True)
class ProcessRecord:
    """One process of a detached stack as `stack stop` must find it again: pid, start time, command line.

    A pid alone is not enough: once the stack has died (or the machine rebooted) the pid may belong to
    an unrelated process. Linux reads /proc (start time in clock ticks since boot, plus the boot id);
    elsewhere `ps` gives the start time and command. An empty start time never matches: unverifiable.
    """

    pid: int
    started: str
    cmdline: tuple[str, ...]

    @classmethod
    def observe(cls, pid: int) -> ProcessRecord | None:
        """The process running as `pid` now; None if there is none or this platform cannot tell."""
        return _from_proc(pid) if PROC.is_dir() else _from_ps(pid)

    @classmethod
    def unverifiable(cls, pid: int) -> ProcessRecord:
        return cls(pid, started="", cmdline=())

    def is_running(self) -> bool:
        return bool(self.started) and ProcessRecord.observe(self.pid) == self

    def to_json(self) -> dict[str, object]:
        return {"pid": self.pid, "started": self.started, "cmdline": list(self.cmdline)}

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> ProcessRecord:
        return cls(int(entry["pid"]), started=str(entry["started"]), cmdline=tuple(map(str, entry["cmdline"])))


@dataclass(frozen=True)
class StopReport:
    """What `stop_recorded` did: pids that were ended (and had exited when it returned), stale entries
    (gone, or the pid reused) left alone, and the ended pids that needed SIGKILL."""

    stopped: tuple[int, ...] = ()
    stale: tuple[int, ...] = ()
    killed: tuple[int, ...] = ()

    def stale_message(self, path: Path) -> str:
        pids = ", ".join(map(str, self.stale))
        return f"left alone stale entries of {path} (pid {pids}): exited, or the pid now belongs to another process"


def write_state(path: Path, records: Sequence[ProcessRecord]) -> None:
    path.write_text(json.dumps({"processes": [r.to_json() for r in records]}))


def read_state(path: Path) -> list[ProcessRecord]:
    """The recorded processes; bare `pids` (written before start times were kept) cannot be verified."""
    state = json.loads(path.read_text())
    legacy = [ProcessRecord.unverifiable(int(pid)) for pid in state.get("pids", [])]
    return [*legacy, *(ProcessRecord.from_json(entry) for entry in state.get("processes", []))]


StopOutcome = Literal["stopped", "killed", "stale"]


def _stop(record: ProcessRecord, timeout: float) -> StopOutcome:
    """SIGTERM the process if it is still the recorded one and wait until it has exited; SIGKILL it
    if it outlives `timeout`."""
    if not _signal(record, signal.SIGTERM):
        return "stale"
    if _exited(record, timeout):
        return "stopped"
    _signal(record, signal.SIGKILL)
    _exited(record, 10)
    return "killed"


def _signal(record: ProcessRecord, signum: signal.Signals) -> bool:
    """Send `signum` if the process is still the recorded one; False (nothing sent) if not."""
    if not record.is_running():
        return False
    try:
        os.kill(record.pid, signum)
    except ProcessLookupError:
        return False
    return True


def _exited(record: ProcessRecord, timeout: float) -> bool:
    """Wait up to `timeout` s for the process to be gone. Not our child, so no wait(): poll instead
    (an exited child that nobody has reaped yet keeps its pid, but no longer its command line)."""
    deadline = time.monotonic() + timeout
    while record.is_running():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _from_proc(pid: int) -> ProcessRecord | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:  # no such process, or it exited while being read
        return None
    # Field 22 (starttime); the fields after the command name, which may hold spaces or ")", start at 3.
    ticks = stat.rpartition(")")[2].split()[22 - 3]
    cmdline = tuple(os.fsdecode(arg) for arg in raw.removesuffix(b"\0").split(b"\0")) if raw else ()
    return ProcessRecord(pid, started=f"{_boot_id()}:{ticks}", cmdline=cmdline)


def _boot_id() -> str:
    try:
        return (PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return ""


def _from_ps(pid: int) -> ProcessRecord | None:
    """Where /proc is absent (macOS, BSD): `ps` gives the start time (to the second) and the command."""
    try:
        shown = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["ps", "-ww", "-p", str(pid), "-o", "lstart=", "-o", "command="],  # noqa: S607 - ps from PATH
            capture_output=True,
            text=True,
            env={**os.environ, "LC_ALL": "C"},
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):  # no ps (Windows): cannot verify, so never signal
        return None
    parts = shown.stdout.split(maxsplit=5)  # lstart is five words: "Mon Jan  1 12:00:00 2024"
    if shown.returncode != 0 or len(parts) < 6:
        return None
    return ProcessRecord(pid, started=" ".join(parts[:5]), cmdline=(parts[5].rstrip("\n"),))


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
