"""The `contactmsg` command line: send, inspect, report, and the operator's incident switches.

Exit codes: 0 ok, 1 not found, 2 usage, 3 operation failed, 4 invalid request.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from contactmsg import context
from contactmsg.commands_feed import feed_app
from contactmsg.commands_ops import consent_app, dead_letters_app, register_ops
from contactmsg.commands_stack import stack_app
from contactmsg.commands_templates import templates_app
from contactmsg.context import STATE, Exit, console, emit_json, err_console, parse_channel, run, usage_error
from contactmsg.views import history_table, report_view, status_table
from shared.models import Channel, Status
from shared.runtime import Services
from shared.services.intake import IntakeResult


class JsonAnywhere(TyperGroup):
    """Takes `--json` after the subcommand too (`status ID --json`), not only before it.

    Why move the token rather than declare the option on every command: `--json` is one global
    switch, read by every command (and by ones that other modules register). Tokens after a `--`
    separator are left alone.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # Any: click's Context is private in typer
        end = args.index("--") if "--" in args else len(args)
        if "--json" in args[1:end]:
            args = ["--json", *(arg for arg in args[:end] if arg != "--json"), *args[end:]]
        return super().parse_args(ctx, args)


app = typer.Typer(
    name="contactmsg",
    help="Send contact messages and operate the Contact Messages pipeline (local stack by default).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    cls=JsonAnywhere,
)
app.add_typer(dead_letters_app, name="dead-letters")
app.add_typer(consent_app, name="optout")
app.add_typer(stack_app, name="stack")
app.add_typer(feed_app, name="feed")
app.add_typer(templates_app, name="templates")
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
    channel: Annotated[str | None, typer.Argument(help="sms, email or whatsapp (optional with --file)")] = None,
    to: Annotated[str | None, typer.Argument(help="E.164 number or email address (optional with --file)")] = None,
    text: Annotated[str, typer.Option(help="Message text")] = "",
    subject: Annotated[str, typer.Option(help="Email subject")] = "",
    message_id: Annotated[str | None, typer.Option("--id", help="Idempotency key (default: a new uuid)")] = None,
    sender: Annotated[str | None, typer.Option("--from", help="A configured sender identity")] = None,
    file: Annotated[Path | None, typer.Option(help="A full send request as JSON instead of the options")] = None,
    priority: Annotated[
        str | None, typer.Option(help="normal (default), or high for one-time codes and alerts: a lane of its own")
    ] = None,
) -> None:
    """Validate, record as Accepted and enqueue one send request; print its message id."""
    request = _file_request(file, channel, to) if file else _request(channel, to, text, subject, sender)
    if message_id:
        request["id"] = message_id
    if priority is not None:
        _set_priority(request, priority, file)

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
        emit_json({"id": sent_id, "status": "queued" if result.created else "exists"})
    elif result.created:
        console.print(f"queued [bold]{sent_id}[/bold]")
    else:  # the same request under a known id: one message, sent at most once
        console.print(f"[bold]{sent_id}[/bold] exists already (same request): see `status {sent_id}`")


def _set_priority(request: dict[str, Any], priority: str, file: Path | None) -> None:
    """`--priority` on the request; with --file, like channel and address, it must agree with the file's."""
    if file is not None and request.get("priority", priority) != priority:
        usage_error(f"priority {priority!r} disagrees with {request['priority']!r} in {file}: give it once")
    request["priority"] = priority


def _request(channel: str | None, to: str | None, text: str, subject: str, sender: str | None) -> dict[str, object]:
    if channel is None or to is None:
        usage_error("name a channel and an address (send sms +14255550100 --text hi), or pass --file")
    parsed = parse_channel(channel)
    content: dict[str, object] = (
        {"subject": subject or "(no subject)", "text": text} if parsed == Channel.EMAIL else {"text": text}
    )
    request: dict[str, object] = {"channel": parsed.value, "to": to, "content": content}
    if sender:
        request["from"] = sender
    return request


def _file_request(file: Path, channel: str | None, to: str | None) -> dict[str, Any]:
    """The request in `file`. A channel or address also given on the command line must agree with it:
    sending to the file's recipient when the operator typed another would be the worse surprise."""
    try:
        request = json.loads(file.read_bytes())
    except OSError as exc:
        usage_error(f"cannot read --file {file}: {exc.strerror}")
    except ValueError as exc:
        _invalid("$", f"{file} is not valid JSON: {exc}")
    if not isinstance(request, dict):
        _invalid("$", f"{file} must hold a JSON object")
    for field, given in (("channel", channel), ("to", to)):
        if given is not None and given != request.get(field):
            usage_error(
                f"{field} {given!r} disagrees with {request.get(field)!r} in {file}: give it once, or make both agree"
            )
    if request.get("channel") not in {c.value for c in Channel}:
        _invalid("channel", f"unknown channel {request.get('channel')!r}: use sms, email or whatsapp")
    return request


def _invalid(field: str, message: str) -> NoReturn:
    err_console.print(f"[red]{field}[/red]: {message}", soft_wrap=True)
    raise typer.Exit(Exit.INVALID)


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
    """Show every transition and provider event of one message, in time order (with the other messages
    of its fallback chain, if it has one)."""
    view = run(lambda svc: svc.views.history(message_id))
    if view is None:
        err_console.print(f"no message {message_id}")
        raise typer.Exit(Exit.NOT_FOUND)
    if STATE.json_output:
        emit_json(view)
    else:
        console.print(history_table(view))


def _view(message_id: str) -> dict[str, object]:
    async def action(svc: Services) -> dict[str, object] | None:
        view = await svc.views.status(message_id)
        if view is not None and view.get("status") == Status.ACCEPTED.value:
            # An Accepted message whose channel or sender is paused is held, not lost: say so.
            paused = await svc.control.paused_targets()
            held = sorted(str(t) for t in (view.get("channel"), view.get("sender")) if t in paused)
            if held:
                view["heldBy"] = f"paused: {', '.join(held)} (sent once resumed)"
        return view

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
    """Summaries written by reconciliation: outcomes per channel, reported share, latency.

    A message is counted once its delivery deadline (SLA) has passed and reconcile has run; the
    messages not counted yet are shown apart."""
    from contactmsg.reporting import collect

    window, only = _window(since), parse_channel(channel) if channel else None
    data = run(lambda svc: collect(svc, window, only))
    if STATE.json_output:
        emit_json(data)
    else:
        console.print(report_view(data))


def _window(since: str) -> timedelta:
    from contactmsg.reporting import parse_window

    try:
        return parse_window(since)
    except ValueError as exc:
        usage_error(f"--since {since!r}: {exc}")


__all__ = ["app", "context"]
