"""The `contactmsg` command line: send, inspect, report, and the operator's incident switches.

Exit codes: 0 ok, 1 not found, 2 usage, 3 operation failed, 4 invalid request.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated

import typer

from contactmsg import context
from contactmsg.commands_ops import consent_app, dead_letters_app, register_ops
from contactmsg.commands_stack import stack_app
from contactmsg.context import STATE, Exit, console, emit_json, err_console, run
from contactmsg.views import history_table, report_table, status_table
from shared.runtime import Services
from shared.services.intake import IntakeResult, status_view

app = typer.Typer(
    name="contactmsg",
    help="Send contact messages and operate the Contact Messages pipeline (local stack by default).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(dead_letters_app, name="dead-letters")
app.add_typer(consent_app, name="optout")
app.add_typer(stack_app, name="stack")
register_ops(app)


@app.callback()
def main(
    settings: Annotated[Path | None, typer.Option(help="App settings file (default: local.settings.json)")] = None,
    account: Annotated[str | None, typer.Option(help="Azure storage account; uses DefaultAzureCredential")] = None,
    acs_endpoint: Annotated[str | None, typer.Option(help="ACS endpoint when using --account")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Global options."""
    STATE.settings_path, STATE.account, STATE.acs_endpoint, STATE.json_output = (
        settings,
        account,
        acs_endpoint,
        json_output,
    )


@app.command()
def send(
    channel: Annotated[str, typer.Argument(help="sms, email or whatsapp")],
    to: Annotated[str, typer.Argument(help="E.164 number or email address")],
    text: Annotated[str, typer.Option(help="Message text")] = "",
    subject: Annotated[str, typer.Option(help="Email subject")] = "",
    message_id: Annotated[str | None, typer.Option("--id", help="Idempotency key (default: a new uuid)")] = None,
    sender: Annotated[str | None, typer.Option("--from", help="A configured sender identity")] = None,
    file: Annotated[Path | None, typer.Option(help="A full send request as JSON instead of the options")] = None,
) -> None:
    """Validate, record as Accepted and enqueue one send request; print its message id."""
    request = json.loads(file.read_text()) if file else _request(channel, to, text, subject, sender)
    if message_id:
        request["id"] = message_id

    request.setdefault("id", str(uuid.uuid4()))

    async def action(svc: Services) -> IntakeResult:
        return await svc.intake.submit(json.dumps(request).encode())

    result = run(action)
    if not result.accepted:
        for error in result.errors:
            err_console.print(f"[red]{error.field}[/red]: {error.message}")
        raise typer.Exit(Exit.INVALID)
    sent_id = result.message_id
    if STATE.json_output:
        emit_json({"id": sent_id, "status": "queued"})
    else:
        console.print(f"queued [bold]{sent_id}[/bold]")


def _request(channel: str, to: str, text: str, subject: str, sender: str | None) -> dict[str, object]:
    content: dict[str, object] = (
        {"subject": subject or "(no subject)", "text": text} if channel == "email" else {"text": text}
    )
    request: dict[str, object] = {"channel": channel, "to": to, "content": content}
    if sender:
        request["from"] = sender
    return request


@app.command()
def status(message_id: str) -> None:
    """Show the status of one message (masked recipient, no content)."""
    view = _view(message_id)
    if STATE.json_output:
        emit_json({k: v for k, v in view.items() if k != "events"})
    else:
        console.print(status_table(view))


@app.command()
def history(message_id: str) -> None:
    """Show every transition and provider event of one message, in time order."""
    view = _view(message_id)
    if STATE.json_output:
        emit_json({"id": message_id, "transitions": view["transitions"], "events": view["events"]})
    else:
        console.print(history_table(view))


def _view(message_id: str) -> dict[str, object]:
    async def action(svc: Services) -> dict[str, object] | None:
        return await status_view(svc.storage.table(svc.names.messages), message_id)

    view = run(action)
    if view is None:
        err_console.print(f"no message {message_id}")
        raise typer.Exit(Exit.NOT_FOUND)
    return view


@app.command()
def report(
    since: Annotated[str, typer.Option(help="Window, e.g. 30m, 6h, 2d")] = "24h",
    channel: Annotated[str | None, typer.Option(help="Only this channel")] = None,
) -> None:
    """Summaries written by reconciliation: outcomes per channel, reported share, latency."""
    from contactmsg.reporting import collect

    data = run(lambda svc: collect(svc, since, channel))
    if STATE.json_output:
        emit_json(data)
    else:
        console.print(report_table(data))


__all__ = ["app", "context"]
