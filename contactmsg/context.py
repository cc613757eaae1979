"""How the CLI reaches the app's storage: the local stack by default, Azure with `--account`.

Why settings files: the CLI reads the same `local.settings.json` (or the sample) the app runs with,
so `contactmsg status ID` against the local stack needs no flags.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from shared.adapters.identity import developer_credential
from shared.errors import ContactMessagesError, StorageUnreachable
from shared.models import Channel
from shared.runtime import Services, build_services
from shared.settings import load_settings

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
console = Console()
err_console = Console(stderr=True)
LOCAL_STACK_HINT = (
    "hint: the local stack does not answer; start it with `python -m contactmsg stack start --detach` "
    "(or pass --account for Azure)"
)


class Exit:
    """Exit codes scripts can rely on."""

    OK = 0
    NOT_FOUND = 1
    USAGE = 2
    FAILED = 3
    INVALID = 4


@dataclass
class CliState:
    settings_path: Path | None = None
    account: str | None = None
    acs_endpoint: str | None = None
    json_output: bool = False


STATE = CliState()


def settings_env() -> dict[str, str]:
    """App settings from the chosen file (or local.settings.json, else the sample), then the environment."""
    path = STATE.settings_path
    if path is None:
        local = ROOT / "local.settings.json"
        path = local if local.exists() else ROOT / "local.settings.sample.json"
    values: dict[str, str] = {}
    if path.exists():
        values = {k: str(v) for k, v in json.loads(path.read_text()).get("Values", {}).items()}
    values |= {k: v for k, v in os.environ.items() if k in values or k.startswith(("ACS_", "AzureWebJobs"))}
    if values.get("AzureWebJobsStorage") == "UseDevelopmentStorage=true":
        values["AzureWebJobsStorage"] = _dev_storage()
    if STATE.account:
        values.pop("AzureWebJobsStorage", None)
        values.pop("ACS_CONNECTION_STRING", None)
        values["AzureWebJobsStorage__accountName"] = STATE.account
        if STATE.acs_endpoint:
            values["ACS_ENDPOINT"] = STATE.acs_endpoint
    return values


def _dev_storage() -> str:
    from devstack.azurite import ACCOUNT, ACCOUNT_KEY

    base = "http://127.0.0.1"
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={base}:10000/{ACCOUNT};QueueEndpoint={base}:10001/{ACCOUNT};TableEndpoint={base}:10002/{ACCOUNT};"
    )


def run(action: Callable[[Services], Awaitable[T]]) -> T:
    """Build the services, run `action`, close; map our errors to exit codes."""

    async def main() -> T:
        # An operator's own sign-in (Azure CLI and the rest of DefaultAzureCredential's chain), never the
        # app's managed identity, which a workstation does not have.
        services = await build_services(
            load_settings(settings_env()), credential_factory=lambda _: developer_credential()
        )
        try:
            return await action(services)
        finally:
            await services.close()

    try:
        return asyncio.run(main())
    except ContactMessagesError as exc:
        err_console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        if isinstance(exc, StorageUnreachable) and STATE.account is None:
            err_console.print(LOCAL_STACK_HINT, soft_wrap=True)
        raise typer.Exit(Exit.FAILED) from exc


def usage_error(message: str) -> NoReturn:
    """One line on stderr and exit 2: what was wrong with the command line and what is accepted."""
    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(Exit.USAGE)


def parse_channel(value: str) -> Channel:
    """The channel named on the command line, or exit 2 naming the accepted ones."""
    try:
        return Channel(value)
    except ValueError:
        usage_error(f"unknown channel {value!r}: use sms, email or whatsapp")


def operator_identity(explicit: str | None) -> str:
    """The operator for the audit trail: `--operator`, else the signed-in Azure identity."""
    if explicit:
        return explicit
    if STATE.account:
        identity = _azure_identity()
        if identity:
            return identity
    err_console.print("[red]error:[/red] an operator identity is required: pass --operator (or sign in to Azure)")
    raise typer.Exit(Exit.USAGE)


def _azure_identity() -> str | None:
    try:
        from azure.identity import DefaultAzureCredential

        token = DefaultAzureCredential().get_token("https://storage.azure.com/.default").token
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    except Exception:
        return None
    return str(claims.get("upn") or claims.get("unique_name") or claims.get("oid") or "") or None


def emit_json(data: object) -> None:
    console.print_json(json.dumps(data, default=str))
