"""`contactmsg templates list`: the WhatsApp templates of each channel and their approval state (issue 18).

Why: a template that is not approved is refused before it is sent (`template-not-approved`), so an
operator who sees that reason wants the state ACS reports now, and the body parameters a request's
bindings must match. This asks ACS afresh (the app keeps the list five minutes per channel).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from contactmsg.context import STATE, Exit, console, emit_json, err_console, run
from shared.models import Channel
from shared.runtime import Services
from shared.services.whatsapp import TemplateSource
from shared.templates import TemplateInfo

templates_app = typer.Typer(help="WhatsApp templates and their approval state.", no_args_is_help=True)


@templates_app.command("list")
def templates_list(
    channel: Annotated[
        str | None, typer.Option(help="A WhatsApp channel registration id (default: every configured one)")
    ] = None,
) -> None:
    """Every template of the channel(s): name, language, state and the body parameters it expects."""

    async def action(svc: Services) -> list[tuple[str, TemplateInfo]]:
        if not isinstance(svc.provider, TemplateSource):
            err_console.print("this provider cannot list WhatsApp templates", markup=False)
            raise typer.Exit(Exit.FAILED)
        channels = [channel] if channel else list(svc.settings.senders.get(Channel.WHATSAPP, ()))
        if not channels:
            err_console.print("no WhatsApp channel: set WHATSAPP_CHANNELS or pass --channel", markup=False)
            raise typer.Exit(Exit.FAILED)
        return [(c, info) for c in channels for info in await svc.provider.list_templates(c)]

    rows = run(action)
    if STATE.json_output:
        emit_json([_as_json(channel_id, info) for channel_id, info in rows])
        return
    table = Table(title="WhatsApp templates")
    for column in ("channel", "name", "language", "state", "body parameters"):
        table.add_column(column)
    for channel_id, info in rows:
        state = info.state if info.approved else f"[yellow]{info.state}[/yellow]"
        table.add_row(channel_id, info.name, info.language, state, ", ".join(info.body_parameters) or "-")
    console.print(table)


def _as_json(channel_id: str, info: TemplateInfo) -> dict[str, object]:
    return {
        "channel": channel_id,
        "name": info.name,
        "language": info.language,
        "state": info.state,
        "approved": info.approved,
        "bodyParameters": list(info.body_parameters),
    }
