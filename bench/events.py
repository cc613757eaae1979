"""Event ingestion: SMS delivery reports recorded per second through `EventService.record`.

value: real delivery reports (built by the ACS emulator's own event builders), each matching a Sent
       ledger row, recorded through `EventService.record` with `--concurrency` in flight.
floor: the storage work one report cannot avoid: the same entity-group transaction (insert the event
       row + etag-guarded merge of the ledger row, in the message's partition), issued directly with
       the same azure-data-tables async SDK client the app builds (same options; the transaction's
       envelope written by the app's own `shared.adapters.table_batch`), against the same
       Azurite at the same concurrency, on a fresh set of Sent rows (their etags come from the
       insert, so the floor reads nothing).
The floor writes its transaction with the app's own envelope (`shared.adapters.table_batch`), as the
app does; the same transactions through the SDK's `submit_transaction`, 2.5 times the CPU, are timed
too and recorded as `floor_with_sdk_envelope`, for comparison with figures from before the envelope.
The gap is the app's own cost per event: envelope parsing and normalising, matching the message by
its tag (one ledger read: the rows were written by another process, so this instance has no etag
hint, the harder case), the status projection and structured logging. In practice it is the read
(two requests per event against one); the Python work is small. On Azurite a read of a ledger row
costs O(ledger rows in the table) (see bench/reconcile.py), so the ratio drifts down as `--n` grows.
Logging is left unconfigured, so INFO records are dropped early.
ratio = value / floor; target >= 0.6. Both sides are measured in alternating rounds after a warm-up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import UpdateMode

from bench import seed
from bench.common import app_env, bounded, parser, storage, verdict, write_result
from shared.adapters import table_batch
from shared.clock import iso
from shared.runtime import build_services
from shared.schema import ledger_row_key
from shared.services.events import EventOutcome
from shared.settings import load_settings

NAME = "events"
TARGET = ">= 0.6"
WARMUP = 20


def floor_ops(message_id: str, provider_id: str, etag: str, sent_at: datetime, reported: datetime) -> list[Any]:
    """The transaction the app submits for one Delivered report, built before the clock starts."""
    row = {
        "PartitionKey": message_id,
        "RowKey": ledger_row_key(message_id),
        "ProviderMessageId": provider_id,
        "SentAt": iso(sent_at),
    }
    ledger, event = seed.delivered_pair(row, reported)
    merge = {k: v for k, v in ledger.items() if k not in ("ProviderMessageId", "SentAt")}  # only what changes
    options = {"mode": UpdateMode.MERGE, "etag": etag, "match_condition": MatchConditions.IfNotModified}
    return [("create", event), ("update", merge, options)]


async def timed(items: list[Any], work: Callable[[Any], Awaitable[Any]], concurrency: int) -> tuple[float, list[Any]]:
    start = time.perf_counter()
    results = await bounded(items, work, concurrency)
    return time.perf_counter() - start, results


async def measure(connection_string: str, n: int, concurrency: int, rounds: int = 2) -> dict[str, Any]:
    svc = await build_services(load_settings(app_env(connection_string)))
    messages = svc.storage.tables.get_table_client(svc.names.messages)  # the app's SDK client and options
    try:
        sent_at = datetime.now(UTC) - timedelta(seconds=30)
        total = n + WARMUP
        start = time.perf_counter()
        app_rows = await seed.insert_sent(svc, messages, [f"ev{i:07d}" for i in range(total)], sent_at, 32)
        raw_rows = await seed.insert_sent(svc, messages, [f"fl{i:07d}" for i in range(total)], sent_at, 32)
        sdk_rows = await seed.insert_sent(svc, messages, [f"sd{i:07d}" for i in range(total)], sent_at, 32)
        seeding = time.perf_counter() - start
        reported = sent_at + timedelta(seconds=3)
        reports = [seed.report(mid, pid, reported) for mid, (pid, _) in app_rows.items()]
        batches = [floor_ops(mid, pid, etag, sent_at, reported) for mid, (pid, etag) in raw_rows.items()]
        sdk_batches = [floor_ops(mid, pid, etag, sent_at, reported) for mid, (pid, etag) in sdk_rows.items()]

        async def transact(ops: list[Any]) -> None:  # through the app's own transaction envelope
            await table_batch.submit(messages, ops)

        async def sdk_transact(ops: list[Any]) -> None:  # the SDK's envelope, for comparison only
            await messages.submit_transaction(ops)

        await bounded(reports[:WARMUP], svc.events.record, concurrency)
        await bounded(batches[:WARMUP], transact, concurrency)
        await bounded(sdk_batches[:WARMUP], sdk_transact, concurrency)
        app_time = raw_time = sdk_time = 0.0
        outcomes: list[EventOutcome] = []
        chunk = -(-n // rounds)
        for r in range(rounds):
            part = slice(WARMUP + r * chunk, WARMUP + min(n, (r + 1) * chunk))
            order = ("app", "raw") if r % 2 == 0 else ("raw", "app")
            for which in order:
                if which == "app":
                    elapsed, results = await timed(reports[part], svc.events.record, concurrency)
                    app_time, outcomes = app_time + elapsed, outcomes + results
                else:
                    raw_time += (await timed(batches[part], transact, concurrency))[0]
            sdk_time += (await timed(sdk_batches[part], sdk_transact, concurrency))[0]
        recorded = outcomes.count(EventOutcome.RECORDED)
        if recorded != n:
            raise RuntimeError(f"only {recorded} of {n} reports were recorded: {set(outcomes)}")
        return {"value": n / app_time, "floor": n / raw_time, "floor_sdk": n / sdk_time, "seeding_seconds": seeding}
    finally:
        await svc.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cli = parser(__doc__ or NAME)
    cli.add_argument("--n", type=int, default=2000, help="reports recorded (and raw transactions)")
    cli.add_argument("--concurrency", type=int, default=16)
    args = cli.parse_args(argv)
    with storage(args.storage) as connection_string:
        figures = asyncio.run(measure(connection_string, args.n, args.concurrency))
    record = write_result(
        args.results_dir,
        NAME,
        figures["value"],
        figures["floor"],
        "events/s",
        target=TARGET,
        n=args.n,
        concurrency=args.concurrency,
        seeding_seconds=round(figures["seeding_seconds"], 3),
        floor_with_sdk_envelope=round(figures["floor_sdk"], 1),
        ratio_to_sdk_envelope_floor=round(figures["value"] / figures["floor_sdk"], 3),
    )
    print(f"seeded {3 * (args.n + WARMUP)} Sent rows in {figures['seeding_seconds']:.1f}s")
    print(f"EventService.record:      {record['value']:8.1f} events/s  (n={args.n}, concurrency={args.concurrency})")
    print(f"raw transaction (floor):  {record['floor']:8.1f} tx/s")
    print(
        f"the same through the SDK's submit_transaction: {figures['floor_sdk']:8.1f} tx/s "
        f"(the app against it: {record['ratio_to_sdk_envelope_floor']:.3f})"
    )
    print(verdict(record["ratio"], TARGET))
    return record


if __name__ == "__main__":
    main()
