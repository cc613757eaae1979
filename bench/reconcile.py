"""Reconciliation cost against history: one `ReconcileService.run()` with `--due` items due, timed with
`--small` and with `--large` terminal messages already in the tables.

Reconciliation must cost O(due items), never O(history) (shared/services/due.py): the only thing
that changes between the two measurements is the history, so their ratio says whether a run grows
with it. The small-history run is the right floor: same code, same due work, same Azurite, same
process, measured in the same run.

History: Delivered SMS ledger rows with their Delivered event rows (the messages table reconcile
reads by key), the pending retention entry reconcile scheduled for each (in the retention table,
which reconcile writes and never queries) and no reconcile due entries in the due table it
range-queries (processed and deleted, as a real history leaves them). Before retention had a table of
its own, its 100k entries sat in the due table, and Azurite (which scans a table for every query,
whatever the partition) made the due query grow with history: a ratio of 1.32.
Due items: SMS rows in Sent whose SLA entry has passed; each run turns them Expired. The two
histories live under two table prefixes in one Azurite; runs alternate between them, each on
freshly seeded due items, and the median of `--repeats` runs is taken for each.
value = large-history seconds, floor = small-history seconds, ratio = large / small; target <= 1.3.

Beside each run, `raw_requests_s`: the storage requests one run makes for its due items (the due query,
then per item a read, the Expired merge and the retention entry, then the deletes), issued directly with
the SDK against the same history. Their ratio (`raw_requests_ratio`) is the emulator's own growth with
history, with no app code in it: a write into a LokiJS collection of 100k rows costs Azurite more than
into one of 1k (its binary indexes are arrays it searches and splices on every write), which Table
Storage, whose partitions are indexed by key, does not show.

Emulator caveat, recorded as `point_read_ms`: Azurite (LokiJS) looks an entity up by its RowKey index
first, then filters on PartitionKey. Ledger rows used to share the RowKey `ledger`, which made a point
read (and the existence check of every insert) cost O(messages) there: 31 ms with 100k rows and a ratio
of 21. The ledger RowKey now repeats the message id (shared/schema.py), so the median raw SDK read of one
ledger row, printed for each history, stays flat. Ledger and event rows are seeded through a bare REST
inserter (bench/rest.py) to keep the client out of the seeding time.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from bench import seed
from bench.common import app_env, parser, storage, verdict, write_result
from bench.rest import RestInserter
from shared.adapters import table_batch
from shared.models import Channel
from shared.runtime import Services, build_services
from shared.schema import ledger_row_key
from shared.services.due import DueKind
from shared.settings import load_settings

NAME = "reconcile"
TARGET = "<= 1.3"
CONCURRENCY = 32


@dataclass
class History:
    """One table prefix holding `size` terminal messages, and its run times."""

    size: int
    svc: Services
    messages: TableClient
    due: TableClient
    retention: TableClient
    seconds: list[float] = field(default_factory=list)
    raw_seconds: list[float] = field(default_factory=list)


async def open_history(connection_string: str, size: int) -> tuple[History, float]:
    """Fresh prefix with `size` Delivered histories; returns it and the seeding seconds."""
    svc = await build_services(load_settings(app_env(connection_string)))
    tables = svc.storage.tables  # the app's own SDK client
    history = History(
        size,
        svc,
        tables.get_table_client(svc.names.messages),
        tables.get_table_client(svc.names.due),
        tables.get_table_client(svc.names.retention),
    )
    start = time.perf_counter()
    sent_at = datetime.now(UTC) - timedelta(days=2)
    ids = [f"h{i:07d}" for i in range(size)]
    async with RestInserter(connection_string, CONCURRENCY) as rest:
        await seed.insert_delivered(svc, rest, ids, sent_at, CONCURRENCY)
    keep = svc.settings.retention_days["content"]
    await seed.insert_batched(history.retention, seed.retention_entries(ids, sent_at, keep), CONCURRENCY // 4)
    return history, time.perf_counter() - start


async def seed_due(history: History, count: int, tag: str) -> None:
    """`count` SMS rows in Sent whose SLA entry passed an hour ago, as the send path leaves them."""
    svc = history.svc
    sla = timedelta(minutes=svc.settings.sla_minutes[Channel.SMS])
    sent_at = datetime.now(UTC) - sla - timedelta(hours=1)
    ids = [f"due-{tag}-{i:05d}" for i in range(count)]
    await seed.insert_sent(svc, history.messages, ids, sent_at, CONCURRENCY)
    entries = [seed.due_entry(mid, DueKind.SLA, sent_at + sla) for mid in ids]
    await seed.insert_batched(history.due, entries, CONCURRENCY // 4)


async def timed_run(history: History, due: int) -> None:
    start = time.perf_counter()
    summary = await history.svc.reconcile.run()
    history.seconds.append(time.perf_counter() - start)
    if summary.actions["expired"] != due:
        raise RuntimeError(f"expected {due} expired, got {dict(summary.actions)}")


async def raw_writes(history: History, due: int, tag: str) -> None:
    """The storage requests one run makes for `due` SLA items, issued directly with the SDK in the same
    order (due query, then per item a read, the Expired merge and the retention entry, then the due
    entries' deletes in transactions of 100): how much of a run's growth is the emulator's alone."""
    await seed_due(history, due, f"raw{tag}")
    keep = history.svc.settings.retention_days["content"]
    start = time.perf_counter()
    query = history.due.query_entities("PartitionKey eq 'due'")
    entries = [entity async for entity in query]
    for entry in entries:
        message_id = str(entry["MessageId"])
        await history.messages.get_entity(message_id, ledger_row_key(message_id))
        expired = {"PartitionKey": message_id, "RowKey": ledger_row_key(message_id), "Status": "Expired"}
        await history.messages.update_entity(expired, mode=UpdateMode.MERGE)
        retention = seed.retention_entries([message_id], datetime.now(UTC), keep)[0]
        await history.retention.upsert_entity(retention)
    for chunk in range(0, len(entries), seed.BATCH):
        deletes = [("delete", entry) for entry in entries[chunk : chunk + seed.BATCH]]
        await table_batch.submit(history.due, deletes)
    history.raw_seconds.append(time.perf_counter() - start)
    if len(entries) != due:
        raise RuntimeError(f"expected {due} due entries, found {len(entries)}")


async def point_read_ms(history: History, reads: int = 20) -> float:
    """Median time of a raw SDK read of one ledger row in this history."""
    times = []
    for _ in range(reads):
        start = time.perf_counter()
        await history.messages.get_entity("due-0-00000", ledger_row_key("due-0-00000"))
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


async def measure(connection_string: str, small: int, large: int, due: int, repeats: int) -> dict[str, Any]:
    histories: list[History] = []
    try:
        seeding: dict[str, float] = {}
        for size, label in ((small, "small"), (large, "large")):
            history, seconds = await open_history(connection_string, size)
            histories.append(history)
            seeding[label] = seconds
            print(f"seeded {size} terminal messages ({label}) in {seconds:.1f}s")
        for history in histories:
            await history.svc.reconcile.run()  # warm-up: connections, nothing due
        for r in range(repeats):
            for history in histories if r % 2 == 0 else histories[::-1]:
                await seed_due(history, due, str(r))
                await timed_run(history, due)
                await raw_writes(history, due, str(r))
        small_read, large_read = [await point_read_ms(history) for history in histories]
        return {
            "point_read_ms": {"small": small_read, "large": large_read},
            "floor": statistics.median(histories[0].seconds),
            "value": statistics.median(histories[1].seconds),
            "runs": {"small": histories[0].seconds, "large": histories[1].seconds},
            "raw_requests_s": {
                "small": statistics.median(histories[0].raw_seconds),
                "large": statistics.median(histories[1].raw_seconds),
            },
            "seeding_seconds": seeding,
        }
    finally:
        for history in histories:
            await history.svc.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cli = parser(__doc__ or NAME)
    cli.add_argument("--small", type=int, default=1000, help="terminal messages in the floor's history")
    cli.add_argument("--large", type=int, default=100_000, help="terminal messages in the measured history")
    cli.add_argument("--due", type=int, default=100, help="due items per reconcile run")
    cli.add_argument("--repeats", type=int, default=3, help="runs per history (median taken)")
    args = cli.parse_args(argv)
    with storage(args.storage) as connection_string:
        figures = asyncio.run(measure(connection_string, args.small, args.large, args.due, args.repeats))
    record = write_result(
        args.results_dir,
        NAME,
        figures["value"],
        figures["floor"],
        "s",
        target=TARGET,
        small=args.small,
        large=args.large,
        due=args.due,
        runs={k: [round(s, 4) for s in v] for k, v in figures["runs"].items()},
        seeding_seconds={k: round(v, 1) for k, v in figures["seeding_seconds"].items()},
        point_read_ms={k: round(v, 3) for k, v in figures["point_read_ms"].items()},
        raw_requests_s={k: round(v, 4) for k, v in figures["raw_requests_s"].items()},
        raw_requests_ratio=round(figures["raw_requests_s"]["large"] / figures["raw_requests_s"]["small"], 3),
    )
    print(f"reconcile, {args.due} due, history {args.large}: {record['value']:.3f}s (median of {args.repeats})")
    print(f"reconcile, {args.due} due, history {args.small}: {record['floor']:.3f}s (floor)")
    reads = record["point_read_ms"]
    print(
        f"raw point read of a ledger row: {reads['large']:.2f}ms with the large history, {reads['small']:.2f}ms small"
    )
    raw = record["raw_requests_s"]
    print(
        f"the same storage requests issued raw: {raw['large']:.3f}s with the large history, {raw['small']:.3f}s "
        f"small (ratio {record['raw_requests_ratio']:.2f}: Azurite's own growth)"
    )
    print(verdict(record["ratio"], TARGET))
    return record


if __name__ == "__main__":
    main()
