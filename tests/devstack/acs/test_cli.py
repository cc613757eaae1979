"""`python -m devstack.acs`: the foreground emulator process users run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from devstack.acs import AcsAdminClient

ROOT = Path(__file__).resolve().parents[3]


def test_cli_prints_endpoint_and_stops_on_sigterm() -> None:
    """The CLI prints its endpoint and connection string, serves the admin API, and exits 0 on SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.acs", "--port", "0", "--log-level", "WARNING"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        endpoint = first.rsplit(" ", 1)[-1].strip()
        connection = process.stdout.readline()

        assert endpoint.startswith("http://127.0.0.1:")
        assert f"endpoint={endpoint}/;accesskey=" in connection
        assert AcsAdminClient(endpoint).health()["status"] == "ok"
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    assert code == 0
