"""`contactmsg feed`: the status feed's health, and replays for a subscriber that lost data (issue 17)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from contactmsg.commands_ops import Operator, Reason
from contactmsg.context import STATE, Exit, console, emit_json, err_console, operator_identity, run, usage_error
from contactmsg.reporting import parse_window
from shared.runtime import Services
from shared.services.outbox import Outbox

feed_app = typer.Typer(help="The status feed: its backlog and last error, and replays.", no_args_is_help=True)


def _feed(svc: Services) -> Outbox:
    if svc.feed is None:
        err_console.print("the status feed is off: FEED_TOPIC_ENDPOINT is not set", markup=False)
        raise typer.Exit(Exit.FAILED)
    return svc.feed


@feed_app.command("status")
def feed_status() -> None:
    """Messages whose feed the sweep has yet to check, the oldest such check, and the last publish error."""

    async def action(svc: Services) -> dict[str, Any]:
        status = await _feed(svc).status()
        error = status.last_error
        return {
            "pendingMessages": status.pending_messages,
            "oldestPendingDue": status.oldest_pending,
            "lastError": {"at": error.at, "reason": error.reason} if error else None,
        }

    data = run(action)
    if STATE.json_output:
        emit_json(data)
        return
    console.print(f"pending: {data['pendingMessages']} message(s); oldest due {data['oldestPendingDue'] or '-'}")
    error = data["lastError"]
    console.print(f"last publish error: {error['at']} {error['reason']}" if error else "last publish error: none")


@feed_app.command("replay")
def feed_replay(
    reason: Reason,
    since: Annotated[str, typer.Option(help="How far back: 30m, 6h, 2d")],
    operator: Operator = None,
) -> None:
    """Republish every status change since then, with the same event ids (subscribers dedupe)."""
    try:
        window = parse_window(since)
    except ValueError as exc:
        usage_error(str(exc))
    actor = operator_identity(operator)

    async def action(svc: Services) -> int:
        now = svc.clock()
        replayed = await _feed(svc).replay(now - window)
        await svc.audit.record(actor=actor, action="feed-replay", subject=f"since:{since}", reason=reason, now=now)
        return replayed

    replayed = run(action)
    if STATE.json_output:
        emit_json({"replayed": replayed})
    else:
        console.print(f"republished {replayed} status change(s) from the last {since}")
