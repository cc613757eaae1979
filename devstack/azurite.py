"""Start and stop the pinned Azurite storage emulator from `node_modules`.

Why a launcher: tests, the demo and the local runner all need one Azurite on known ports, started
with the flags the current storage SDKs need (`--skipApiVersionCheck`), and a clear error when Node
is missing rather than a hang.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteError(RuntimeError):
    """Azurite could not be started (missing Node/npm package, or it never answered)."""


def free_port() -> int:
    """Return a TCP port that is free on the loopback interface right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on the loopback interface right now. They are held open together
    while chosen: asked one at a time, the kernel may hand out the same port twice."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def port_answers(port: int) -> bool:
    """True if something accepts connections on this loopback port now."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def azurite_binary(root: Path = PROJECT_ROOT) -> Path:
    """Locate the Azurite entry point installed by `npm ci`, or explain what is missing."""
    if shutil.which("node") is None:
        raise AzuriteError("node is not installed: install Node.js 18+ (for example `apt-get install nodejs npm`)")
    script = root / "node_modules" / "azurite" / "dist" / "src" / "azurite.js"
    if not script.exists():
        raise AzuriteError(f"Azurite is not installed in {root / 'node_modules'}: run `npm ci` (or `make setup`)")
    return script


@dataclass
class Azurite:
    """One Azurite process (blob, queue, table). In memory unless `data_dir` is given."""

    blob_port: int = 0
    queue_port: int = 0
    table_port: int = 0
    data_dir: Path | None = None
    log_path: Path | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        spare = iter(free_ports(3))
        self.blob_port = self.blob_port or next(spare)
        self.queue_port = self.queue_port or next(spare)
        self.table_port = self.table_port or next(spare)

    @property
    def connection_string(self) -> str:
        base = "http://127.0.0.1"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={base}:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint={base}:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint={base}:{self.table_port}/{ACCOUNT};"
        )

    def command(self) -> list[str]:
        cmd = [
            "node",
            str(azurite_binary()),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.blob_port),
            "--queueHost",
            "127.0.0.1",
            "--queuePort",
            str(self.queue_port),
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(self.table_port),
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--loose",
        ]
        if self.log_path is None:  # its access log would go nowhere, and writing it costs Azurite CPU per request
            cmd.append("--silent")
        if self.data_dir is None:
            cmd.append("--inMemoryPersistence")
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            cmd += ["--location", str(self.data_dir)]
        return cmd

    def start(self, timeout: float = 30.0) -> Azurite:
        """Start Azurite and wait until all three services accept connections."""
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        out: IO[bytes] | int = self._log if self._log is not None else subprocess.DEVNULL
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            self.command(),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
        )
        deadline = time.monotonic() + timeout
        ports = (self.blob_port, self.queue_port, self.table_port)
        while not all(port_answers(p) for p in ports):
            if self._process.poll() is not None:
                raise AzuriteError(f"Azurite exited with code {self._process.returncode} (see {self.log_path})")
            if time.monotonic() > deadline:
                self.stop()
                raise AzuriteError(f"Azurite did not answer within {timeout:.0f}s")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Azurite: SIGTERM, then SIGKILL if it does not exit in time."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
