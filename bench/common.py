"""Plumbing shared by the benchmarks: the results file, the machine record, Azurite, app settings, concurrency.

Every benchmark writes `{"name", "value", "floor", "ratio", "unit", "machine", ...}` so the figures of
one run can be compared with each other and with later runs on the same kind of machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from devstack.acs import DEFAULT_TOPIC
from devstack.azurite import Azurite

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent
SMS_SENDER = "+18005550100"
# Nothing listens on port 9 (discard); the paths measured here never call ACS for SMS.
UNUSED_ACS = "endpoint=http://127.0.0.1:9/;accesskey=YWNzLWVtdWxhdG9yLWRldi1rZXktbm90LXNlY3JldCE="


def code_version() -> str:
    """The commit measured, "-dirty" if tracked files outside bench/results differ from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)  # noqa: S603, S607
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results")
    return f"{commit}-dirty" if changed else commit


# Taken when the benchmark process starts, i.e. when it imports the app code it measures.
CODE_VERSION = code_version()
T = TypeVar("T")
R = TypeVar("R")


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_result(
    results_dir: Path, name: str, value: float, floor: float, unit: str, ratio: float | None = None, **extra: Any
) -> dict[str, Any]:
    """Write `<results_dir>/<name>.json`; ratio defaults to value / floor."""
    record = {
        "name": name,
        "value": value,
        "floor": floor,
        "ratio": value / floor if ratio is None else ratio,
        "unit": unit,
        **extra,
        "code": CODE_VERSION,
        "machine": machine(),
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def verdict(ratio: float, target: str) -> str:
    """`target` is like '>= 0.6' or '<= 1.3'."""
    op, bound = target.split()
    holds = ratio >= float(bound) if op == ">=" else ratio <= float(bound)
    return f"ratio {ratio:.3f} (target {target}): {'holds' if holds else 'DOES NOT hold'}"


def parser(description: str) -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(description=description)
    cli.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where <name>.json is written")
    cli.add_argument("--storage", default=None, help="storage connection string (default: start an in-memory Azurite)")
    return cli


# Azurite processes this run started, by connection string, so a benchmark can account their CPU time
# and tell when their periodic queue clean-up may run (bench/stall.py).
AZURITE_PIDS: dict[str, int] = {}
AZURITE_SPAWNED: dict[str, float] = {}  # time.monotonic() just before the process was spawned


@contextlib.contextmanager
def storage(connection_string: str | None) -> Iterator[str]:
    """The given storage, or a fresh in-memory Azurite for the length of the benchmark."""
    if connection_string:
        yield connection_string
        return
    spawned = time.monotonic()
    azurite = Azurite().start()
    if azurite.pid is not None:
        AZURITE_PIDS[azurite.connection_string] = azurite.pid
    AZURITE_SPAWNED[azurite.connection_string] = spawned
    try:
        yield azurite.connection_string
    finally:
        AZURITE_PIDS.pop(azurite.connection_string, None)
        AZURITE_SPAWNED.pop(azurite.connection_string, None)
        azurite.stop()


def app_env(connection_string: str) -> dict[str, str]:
    """App settings on a fresh table prefix and queue, as the integration tests build them."""
    suffix = uuid.uuid4().hex[:10]
    return {
        "AzureWebJobsStorage": connection_string,
        "ACS_CONNECTION_STRING": UNUSED_ACS,
        "ACS_RESOURCE_IDS": DEFAULT_TOPIC,
        "SMS_SENDERS": SMS_SENDER,
        "CONSENT_HASH_KEY": "bench-key",
        "TABLE_PREFIX": f"b{suffix}",
        "SEND_QUEUE": f"bench-{suffix}",
    }


async def bounded(items: Iterable[T], work: Callable[[T], Awaitable[R]], concurrency: int) -> list[R]:
    """Run `work` over `items` with at most `concurrency` in flight; results in item order."""
    pending = list(enumerate(items))
    results: list[Any] = [None] * len(pending)
    cursor = iter(pending)

    async def worker() -> None:
        for index, item in cursor:
            results[index] = await work(item)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return results


# A request whose connection drops under it: azure-core's ServiceRequestError/ServiceResponseError,
# aiohttp's own errors for raw requests. Azurite (Node) closes a keep-alive connection after 5 s idle,
# and a client that reuses it just then gets "Server disconnected" or "Connection reset by peer"; only
# idempotent methods are sent again by the SDKs or aiohttp, never a POST (an insert, a batch).
CONNECTION_ERRORS = (ServiceRequestError, ServiceResponseError, aiohttp.ClientConnectionError)
RESENDS = 4
CONFLICT = 409


async def resend_on_drop(send: Callable[[], Awaitable[T]], landed: Callable[[], Awaitable[T]]) -> T:
    """`send()`, sent again (up to RESENDS times in all) when its connection drops. For work that is
    not measured, such as seeding. A conflict on a resend means the earlier attempt landed after all:
    `landed()` then gives what it would have returned."""
    for attempt in range(1, RESENDS + 1):
        try:
            return await send()
        except CONNECTION_ERRORS:
            if attempt == RESENDS:
                raise
        except HttpResponseError as exc:
            if attempt == 1 or exc.status_code != CONFLICT:
                raise
            return await landed()
    raise AssertionError("unreachable: the last attempt returns or raises")
