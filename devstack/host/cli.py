"""`python -m devstack.host`: parse flags, prepare settings like Core Tools, index the app, run.

Why startup happens before the event loop: settings must be in the environment before the app
module is imported (apps read them at import), the port must be bound before WEBSITE_HOSTNAME is
known, and every configuration or indexing error should stop the runner with one clear line.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from devstack.host.catalog import build_catalog
from devstack.host.config import HostConfigError, host_environment, load_host_config
from devstack.host.indexer import FunctionLoadError, IndexingError, load_app
from devstack.host.log_levels import apply_log_levels, configure_logging
from devstack.host.runner import Host, HostContext
from devstack.host.settings import (
    SettingError,
    Settings,
    apply_local_settings,
    default_host_id,
    local_http_port,
    normalize_host_id,
)
from devstack.host.worker_pool import WorkerPlan
from devstack.loops import run_stand_in

log = logging.getLogger("devstack.host")

NON_STORAGE_TRIGGERS = ("httpTrigger",)
MAX_WORKER_PROCESSES = 10
STORAGE_SETTING = "AzureWebJobsStorage"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.host", description=__doc__)
    parser.add_argument("--app-dir", type=Path, required=True, help="folder holding function_app.py and host.json")
    parser.add_argument("--port", type=int, help="HTTP port (0 = any free port; default Host.LocalHttpPort or 7071)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default loopback)")
    parser.add_argument("--storage", help="AzureWebJobsStorage connection string (wins over settings)")
    parser.add_argument("--host-id", help="host id for timer locks and status (default as the host computes it)")
    parser.add_argument("--grace-period", type=float, default=10.0, help="seconds in-flight work may finish on stop")
    parser.add_argument("--ready-file", type=Path, help="write {url, pid} JSON here once running")
    parser.add_argument(
        "--worker-packages",
        type=Path,
        help="packages the Python worker brings (e.g. an older azure-functions), ahead of the app's on its "
        "path unless PYTHON_ISOLATE_WORKER_DEPENDENCIES is true",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.verbose)
    try:
        context = prepare(args)
    except (HostConfigError, SettingError, IndexingError, FunctionLoadError, ValueError, OSError) as exc:
        log.error("Host failed to start: %s", exc)
        return 1
    apply_log_levels(context.config.log_levels)
    code = run_stand_in(Host(context).run())
    _exit_now(code)
    return code


def prepare(args: argparse.Namespace) -> HostContext:
    app_dir = args.app_dir.resolve()
    ready_file = args.ready_file.resolve() if args.ready_file else None
    sock = _bind(args.bind, args.port if args.port is not None else local_http_port(app_dir))
    if args.storage:
        os.environ[STORAGE_SETTING] = args.storage
    apply_local_settings(app_dir, os.environ, {"WEBSITE_HOSTNAME": f"localhost:{sock.getsockname()[1]}"})
    os.chdir(app_dir)  # the worker runs with the app root as its working directory
    settings = Settings.from_environ()
    config = load_host_config(app_dir, host_environment())
    script = settings.get("PYTHON_SCRIPT_FILE_NAME") or "function_app.py"
    specs = load_app(app_dir, script)
    workers = WorkerPlan(
        worker_process_count(settings),
        app_dir,
        script,
        args.verbose,
        args.worker_packages.resolve() if args.worker_packages else None,
        is_true(settings.get("PYTHON_ISOLATE_WORKER_DEPENDENCIES")),
    )
    zone = time_zone(settings)
    catalog = build_catalog(specs, settings, config, zone)
    _require_storage(settings, [spec.trigger.type for spec in specs])
    host_id = args.host_id or settings.get("AzureFunctionsWebHost:hostid") or default_host_id(app_dir)
    return HostContext(
        catalog, settings, config, normalize_host_id(host_id), zone, sock, args.grace_period, ready_file, workers
    )


def worker_process_count(settings: Settings) -> int:
    """FUNCTIONS_WORKER_PROCESS_COUNT: 1 (default) to 10, as the host allows; anything else is 1."""
    raw = (settings.get("FUNCTIONS_WORKER_PROCESS_COUNT") or "1").strip()
    if raw.isdigit() and 1 <= int(raw) <= MAX_WORKER_PROCESSES:
        return int(raw)
    log.warning("FUNCTIONS_WORKER_PROCESS_COUNT=%s is not a whole number from 1 to 10; using 1", raw)
    return 1


def is_true(value: str | None) -> bool:
    """The worker's `is_true_like`: 1, true, t, yes, y (any case)."""
    return (value or "").strip().lower() in {"1", "true", "t", "yes", "y"}


def _bind(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    return sock


def time_zone(settings: Settings) -> ZoneInfo:
    """WEBSITE_TIME_ZONE (IANA name), else TZ, else UTC (Azure's default)."""
    for name in ("WEBSITE_TIME_ZONE", "TZ"):
        value = (settings.get(name) or "").strip().lstrip(":")
        if value:
            try:
                return ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                log.warning("%s=%s is not an IANA time zone; timers use UTC", name, value)
    return ZoneInfo("UTC")


def _require_storage(settings: Settings, trigger_types: list[str]) -> None:
    """Core Tools refuses to start without AzureWebJobsStorage unless every trigger is HTTP."""
    if all(kind in NON_STORAGE_TRIGGERS for kind in trigger_types):
        return
    if not settings.get("AzureWebJobsStorage") and not settings.has_section("AzureWebJobsStorage"):
        raise SettingError(
            "Missing value for AzureWebJobsStorage in local.settings.json. This is required for all "
            "triggers other than httptrigger, kafkatrigger, rabbitmqtrigger, orchestrationTrigger, "
            "activityTrigger, entityTrigger."
        )


def _exit_now(code: int) -> None:
    """Exit without joining worker threads: a sync function still running must not hold the exit."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
