"""Operator commands: dead letters and replay, consent overrides, erasure, reconcile, pause and resume.

Every command that changes state takes an operator identity and a reason, and writes the audit table.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import track

from contactmsg.context import (
    STATE,
    Exit,
    console,
    emit_json,
    err_console,
    operator_identity,
    parse_channel,
    run,
    usage_error,
)
from contactmsg.reporting import reconcile_summary
from contactmsg.views import reconcile_lines, rows_table
from shared.errors import ValidationFailed
from shared.models import Channel, Status
from shared.privacy import mask
from shared.runtime import Services
from shared.services.consent import ALL_SENDERS, ConsentState
from shared.services.operator import NO_SUCH_MESSAGE, OperatorService, ReplayResult
from shared.settings import Settings
from shared.validation import canonical_recipient, channel_of_address

dead_letters_app = typer.Typer(help="List, inspect and replay dead-lettered messages.", no_args_is_help=True)
consent_app = typer.Typer(help="Check and override opt-outs (audited).", no_args_is_help=True)

ERASE_COUNTS = ("messages", "consent", "other", "optouts_kept")

Operator = Annotated[str | None, typer.Option(help="Who is acting (default: the signed-in Azure identity)")]
Reason = Annotated[str, typer.Option(help="Why (kept in the audit table)")]


def _operator(svc: Services) -> OperatorService:
    return OperatorService(svc.ledger, svc.storage.table(svc.names.messages), svc.outbound, svc.audit, svc.clock)


@dead_letters_app.command("list")
def dead_letters_list() -> None:
    """Dead-lettered messages (with reasons) and undecodable payloads."""

    async def action(svc: Services) -> dict[str, list[dict[str, Any]]]:
        rows = await _operator(svc).dead_lettered()
        raw = await svc.dead_letters.raw_entries()
        return {
            "messages": [
                {
                    "id": r.message_id,
                    "channel": r.channel_name,
                    "at": r.times.get(Status.DEAD_LETTERED),
                    "reason": r.reason,
                }
                for r in rows
            ],
            "undecodable": [{"id": f"raw:{r.queue_message_id}", "at": r.at, "reason": r.reason} for r in raw],
        }

    data = run(action)
    if STATE.json_output:
        emit_json(data)
        return
    console.print(rows_table("dead-lettered messages", data["messages"], ["id", "channel", "at", "reason"]))
    console.print(rows_table("undecodable payloads", data["undecodable"], ["id", "at", "reason"]))


@dead_letters_app.command("show")
def dead_letters_show(message_id: str) -> None:
    """One dead letter: its reason and, for undecodable ones, the stored text."""

    async def action(svc: Services) -> dict[str, Any] | None:
        if message_id.startswith("raw:"):
            raw = await svc.dead_letters.raw_entry(message_id[4:])
            if raw is None:
                return None
            return {"id": message_id, "reason": raw.reason, "text": raw.text}
        row = await svc.ledger.get(message_id)
        if row is None:
            return None
        return {
            "id": message_id,
            "status": row.status.value,
            "reason": row.reason,
            "attempts": row.attempts,
            "channel": row.channel.value,
        }

    data = run(action)
    if data is None:
        err_console.print(f"no dead letter {message_id}")
        raise typer.Exit(Exit.NOT_FOUND)
    emit_json(data)


@dead_letters_app.command("replay")
def dead_letters_replay(
    reason: Reason,
    message_ids: Annotated[list[str] | None, typer.Argument(help="Message ids to replay")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every dead-lettered message")] = False,
    force_resend: Annotated[bool, typer.Option(help="Also resend Unknown messages (risk of a duplicate)")] = False,
    operator: Operator = None,
) -> None:
    """Replay through the ledger: a message that was in fact sent is not sent again."""
    actor = operator_identity(operator)
    if not message_ids and not all_:
        usage_error("name message ids or pass --all")

    async def action(svc: Services) -> list[ReplayResult]:
        ops = _operator(svc)
        ids = list(message_ids or [])
        if all_:
            ids += [r.message_id for r in await ops.dead_lettered()]
        return [
            await ops.replay(i, actor=actor, reason=reason, force_resend=force_resend)
            for i in track(ids, description="replaying", disable=STATE.json_output or len(ids) < 20)
        ]

    results = run(action)
    if STATE.json_output:
        emit_json([{"id": r.message_id, "action": r.action} for r in results])
    else:
        rows = [{"id": r.message_id, "action": r.action} for r in results]
        console.print(rows_table("replay", rows, ["id", "action"]))
    # Like `rm a b`: every id is tried, and one that does not exist makes the exit 1 (not found), even
    # when others were replayed, so a typo in a script's list is not lost. Nothing to replay is no error.
    missing = [r.message_id for r in results if r.action == NO_SUCH_MESSAGE]
    if missing:
        err_console.print(f"no such message: {', '.join(missing)}", soft_wrap=True, markup=False)
        raise typer.Exit(Exit.NOT_FOUND)


def _recipient(channel: Channel, address: str, field: str = "address") -> str:
    """The address as sends use it, or exit 4: an opt-out under any other form would never match."""
    try:
        return canonical_recipient(channel, address, field)
    except ValidationFailed as exc:
        err_console.print(f"[red]invalid {channel.value} address:[/red] {exc}")
        raise typer.Exit(Exit.INVALID) from None


def _channel(value: str) -> Channel:
    return parse_channel(value)


@consent_app.command("check")
def optout_check(channel: str, address: str, sender: Annotated[str, typer.Option(help="Sender identity")] = "") -> None:
    """May `sender` (default: the channel's default sender) message this address now?"""
    ch = _channel(channel)
    address = _recipient(ch, address)

    async def action(svc: Services) -> dict[str, Any]:
        from_ = sender or svc.settings.default_sender(ch) or ALL_SENDERS
        decision = await svc.consent.check(ch, address, from_)
        return {"allowed": decision.allowed, "reason": decision.reason, "sender": from_}

    data = run(action)
    if STATE.json_output:
        emit_json(data)
    else:
        console.print("allowed" if data["allowed"] else f"[red]blocked[/red]: {data['reason']}")
    if not data["allowed"]:
        raise typer.Exit(Exit.NOT_FOUND)


def _set(channel: str, address: str, sender: str, state: ConsentState, operator: str | None, reason: str) -> None:
    ch = _channel(channel)
    address = _recipient(ch, address)
    actor = operator_identity(operator)

    async def action(svc: Services) -> None:
        await svc.consent.set_state(
            ch, address, sender or ALL_SENDERS, state, reason=reason, actor=actor, now=svc.clock()
        )

    run(action)
    console.print(f"{state.value} recorded for {mask(address)}")


@consent_app.command("add")
def optout_add(channel: str, address: str, reason: Reason, sender: str = "", operator: Operator = None) -> None:
    """Opt an address out (of one sender, or of all with no --sender)."""
    _set(channel, address, sender, ConsentState.OPTED_OUT, operator, reason)


@consent_app.command("remove")
def optout_remove(channel: str, address: str, reason: Reason, sender: str = "", operator: Operator = None) -> None:
    """Lift an opt-out (records an opt-in, which wins over older opt-outs)."""
    _set(channel, address, sender, ConsentState.OPTED_IN, operator, reason)


def register_ops(app: typer.Typer) -> None:
    app.command()(erase)
    app.command()(reconcile)
    app.command()(pause)
    app.command()(resume)


def erase(
    reason: Reason,
    recipient: Annotated[str, typer.Option(help="Phone number or email address to erase everywhere")],
    operator: Operator = None,
) -> None:
    """Erase one recipient from every table (ledger payloads, consent permissions, inbound, dead
    letters). Its opt-outs and suppressions are kept, so that it is not messaged again."""
    recipient = _recipient(channel_of_address(recipient), recipient, "recipient")
    actor = operator_identity(operator)
    counts = run(lambda svc: svc.retention.erase(recipient, actor=actor, reason=reason))
    if STATE.json_output:
        emit_json({key: counts[key] for key in ERASE_COUNTS})
        return
    console.print(
        f"erased {mask(recipient)}: {counts['messages']} message(s) with the recipient removed, "
        f"{counts['consent']} permission(s), {counts['other']} inbound or dead-letter row(s)"
    )
    if counts["optouts_kept"]:
        console.print(f"kept {counts['optouts_kept']} opt-out(s): the address stays blocked")


def reconcile() -> None:
    """Run one reconciliation pass now and print its summary."""
    summary = reconcile_summary(run(lambda svc: svc.reconcile.run()))
    if STATE.json_output:
        emit_json(summary)
    else:
        console.print("\n".join(reconcile_lines(summary)), markup=False)


def pause(
    reason: Reason,
    target: Annotated[str, typer.Argument(help="A channel (sms, email, whatsapp) or a sender identity")],
    operator: Operator = None,
) -> None:
    """The incident switch: hold every message for a channel or sender until resume."""
    actor = operator_identity(operator)

    async def action(svc: Services) -> None:
        _require_target(target, svc.settings, "pause")
        await svc.control.pause(target, actor=actor, reason=reason, now=svc.clock())

    run(action)
    console.print(f"paused {target}")


def resume(
    reason: Reason,
    target: Annotated[str, typer.Argument(help="What was paused")],
    operator: Operator = None,
) -> None:
    """Resume a paused channel or sender; held messages flow again within seconds."""
    actor = operator_identity(operator)

    async def action(svc: Services) -> None:
        # Whatever is paused can be resumed, even a target recorded before targets were checked.
        _require_target(target, svc.settings, "resume", await svc.control.paused_targets())
        await svc.control.resume(target, actor=actor, reason=reason, now=svc.clock())

    run(action)
    console.print(f"resumed {target}")


def _require_target(target: str, settings: Settings, verb: str, paused: frozenset[str] = frozenset()) -> None:
    """Exit 2 unless `target` is a channel or a configured sender. A send is held when its channel or
    sender equals a paused target exactly, so any other name would be recorded and hold nothing."""
    senders = [sender for group in settings.senders.values() for sender in group]
    if target in {c.value for c in Channel} | set(senders) | paused:
        return
    shown = ", ".join(senders[:5]) + (", ..." if len(senders) > 5 else "") if senders else "none configured"
    usage_error(f"cannot {verb} {target!r}: name a channel (sms, email, whatsapp) or a configured sender ({shown})")
