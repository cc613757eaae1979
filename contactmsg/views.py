"""Rich tables for the CLI's human output."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text


def status_table(view: dict[str, Any]) -> Table:
    table = Table(title=f"message {view['id']}", show_header=False)
    for key in (
        "status",
        "heldBy",
        "channel",
        "recipientMasked",
        "sender",
        "attempts",
        "providerMessageId",
        "reason",
        "createdAt",
        "deliveryLatencyMs",
        "costEstimate",
        "fallbackOf",
        "fallback",
        "chainOutcome",
    ):
        if view.get(key) not in (None, ""):
            table.add_row(key, str(view[key]))
    return table


EVENT_TYPE_PREFIX = "Microsoft.Communication."


def history_table(view: dict[str, Any]) -> Table:
    """Sorted by the full timestamps; shown shorter, so that it fits 80 columns (--json has them whole)."""
    chained = len(view.get("chain", [])) > 1
    table = Table(title=f"history of {view['id']}", caption=_chain_caption(view) if chained else None)
    table.add_column("at (UTC)", no_wrap=True)
    for column in ("message", "what", "status", "detail") if chained else ("what", "status", "detail"):
        table.add_column(column, overflow="fold")

    def who(entry: dict[str, Any]) -> list[str]:
        return [f"{entry.get('channel', '')} {entry.get('message', '')}"] if chained else []

    rows = [(t["at"], *who(t), "transition", t["status"], "") for t in view["transitions"]]
    rows += [
        (e["eventTime"], *who(e), _event_type(e["eventType"]), e["status"] or e["rawStatus"] or "", e["detail"] or "")
        for e in view["events"]
    ]
    for at, *rest in sorted(rows, key=lambda r: str(r[0])):
        table.add_row(_short_time(str(at)), *(str(cell) for cell in rest))
    return table


def _chain_caption(view: dict[str, Any]) -> str:
    """`whatsapp fb-1 (Failed) > sms fb-1.fb1 (Delivered): delivered by sms after whatsapp failed`."""
    members = " > ".join(f"{m['channel']} {m['id']} ({m['status']})" for m in view["chain"])
    return f"fallback chain {members}: {view.get('chainOutcome', '')}"


def _event_type(name: str | None) -> str:
    return (name or "").removeprefix(EVENT_TYPE_PREFIX)


def _short_time(stamp: str) -> str:
    """`2026-11-28T10:00:00.1234567Z` → `2026-11-28 10:00:00.123`."""
    date, _, time = stamp.rstrip("Z").partition("T")
    seconds, dot, fraction = time.partition(".")
    return f"{date} {seconds}{dot}{fraction[:3]}" if time else stamp


def report_view(data: dict[str, Any]) -> Group:
    """What the summaries counted (a table, or "none"), then what they do not count yet."""
    heading = f"since {data['since']} ({data['runs']} reconcile runs)"
    if not data["cohort"]:
        return Group(Text(f"{heading}: none counted"), Text(not_counted_line(data)))
    share = data["reportedShare"]
    reported = (
        f"reported {data['reported']}/{data['total']}"
        + (f" ({share:.1%})" if share is not None else "")
        + (f", worst p95 latency {data['worstP95Ms']} ms" if data["worstP95Ms"] is not None else "")
    )
    parts: list[RenderableType] = [Text(heading), report_table(data), Text(reported)]
    if data.get("chains"):
        parts.append(chain_table(data))
    return Group(*parts, Text(not_counted_line(data)))


def not_counted_line(data: Mapping[str, Any]) -> str:
    # Counted means: the delivery deadline (SLA) has passed and a reconcile run has closed the message.
    return (
        f"not counted yet: {data['withinSla']} sent message(s) within their delivery deadline (SLA), "
        f"{data['awaitingReconcile']} past it awaiting the next reconcile"
    )


def report_table(data: dict[str, Any]) -> Table:
    return _fees_table(None, ("channel", "status", "messages"), data["cohort"], data.get("costs", {}))


def chain_table(data: dict[str, Any]) -> Table:
    """Fallback chains by the channels they went through and how their last message ended."""
    columns = ("channels", "ended", "chains")
    return _fees_table("fallback chains", columns, data["chains"], data.get("chainCosts", {}))


def _fees_table(
    title: str | None, columns: tuple[str, str, str], counts: Mapping[str, int], costs: Mapping[str, float]
) -> Table:
    """Counts keyed `<what>|<status>` (a chain's channels joined by `>`), with their estimated fees."""
    table = Table(title=title)
    for column in columns[:2]:
        table.add_column(column)
    table.add_column(columns[2], justify="right")
    table.add_column("est. ACS fees (USD)", justify="right")
    for key, n in sorted(counts.items()):
        what, status = key.split("|")
        table.add_row(what.replace(">", " → "), status, str(n), f"{costs.get(key, 0.0):.4f}")
    return table


def reconcile_lines(summary: Mapping[str, Any]) -> list[str]:
    """A reconcile summary (the structured form `--json` prints) as a few readable lines."""
    latency = "no deliveries measured"
    if summary["latencyP50Ms"] is not None:
        latency = f"p50 {summary['latencyP50Ms']} ms, p95 {summary['latencyP95Ms']} ms"
    return [
        f"reconciled at {summary['at']}",
        f"  actions: {_counts(summary['actions'])}",
        f"  deadline (SLA) closed for {summary['cohortSize']} message(s), {summary['reported']} reported: "
        f"{_counts(summary['cohort'])}",
        f"  fallback chains closed: {_counts(summary.get('chains', {}))}",
        f"  delivery latency: {latency}",
        f"  poison queue depth {summary['poisonDepth']}; orphan events matched {summary['orphansMatched']}, "
        f"given up {summary['orphansGivenUp']}",
    ]


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{key.replace('|', ' ')} {n}" for key, n in sorted(counts.items())) or "none"


def rows_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> RenderableType:
    """A table of `rows`, or "<title>: none": an empty table reads like a rendering fault."""
    if not rows:
        return Text(f"{title}: none")
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    return table
