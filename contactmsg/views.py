"""Rich tables for the CLI's human output."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def status_table(view: dict[str, Any]) -> Table:
    table = Table(title=f"message {view['id']}", show_header=False)
    for key in (
        "status",
        "channel",
        "recipientMasked",
        "sender",
        "attempts",
        "providerMessageId",
        "reason",
        "createdAt",
        "deliveryLatencyMs",
        "costEstimate",
    ):
        if view.get(key) not in (None, ""):
            table.add_row(key, str(view[key]))
    return table


def history_table(view: dict[str, Any]) -> Table:
    table = Table(title=f"history of {view['id']}")
    for column in ("at", "what", "status", "detail"):
        table.add_column(column)
    rows = [(t["at"], "transition", t["status"], "") for t in view["transitions"]]
    rows += [
        (e["eventTime"], e["eventType"] or "", e["status"] or e["rawStatus"] or "", e["detail"] or "")
        for e in view["events"]
    ]
    for row in sorted(rows, key=lambda r: str(r[0])):
        table.add_row(*(str(cell) for cell in row))
    return table


def report_table(data: dict[str, Any]) -> Table:
    table = Table(title=f"since {data['since']} ({data['runs']} reconcile runs)")
    table.add_column("channel")
    table.add_column("status")
    table.add_column("messages", justify="right")
    for key, n in sorted(data["cohort"].items()):
        channel, status = key.split("|")
        table.add_row(channel, status, str(n))
    share = data["reportedShare"]
    table.caption = (
        f"reported {data['reported']}/{data['total']}"
        + (f" ({share:.1%})" if share is not None else "")
        + (f", worst p95 latency {data['worstP95Ms']} ms" if data["worstP95Ms"] is not None else "")
    )
    return table


def rows_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    return table
