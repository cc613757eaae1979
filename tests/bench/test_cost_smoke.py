"""bench/cost.py: the meter classifies requests as Azure bills them, and a tiny run counts what the
pipeline did. No figure here is timed; the counts are checked for consistency, not for size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import cost
from bench.costmeter import Op, classify
from bench.prices import PRICES, storage_price
from devstack.azurite import Azurite

ACCOUNT = "/devstoreaccount1"


def test_a_table_batch_is_one_transaction_whatever_it_holds() -> None:
    """An entity-group transaction is one request, so one billed transaction."""
    assert classify("table", "POST", f"{ACCOUNT}/$batch", {}, b"") == Op("table", "batch", "batch", "$batch")


def test_a_queue_receive_of_32_messages_is_one_read_and_an_empty_one_is_told_apart() -> None:
    """Get Messages is one transaction at any numofmessages; a poll that found nothing is named as such."""
    query = {"numofmessages": ["32"], "visibilitytimeout": ["600"]}
    found = classify("queue", "GET", f"{ACCOUNT}/bench-0123456789/messages", query, b"<QueueMessage></QueueMessage>")
    empty = classify("queue", "GET", f"{ACCOUNT}/bench-0123456789/messages", query, b"<QueueMessagesList/>")
    assert found == Op("queue", "get messages", "read", "bench-*")
    assert empty == Op("queue", "get messages (empty)", "read", "bench-*")


def test_entity_requests_are_told_apart_by_method_and_address() -> None:
    """A point read, a merge, a delete, an insert and a query of one table, each its own operation."""
    entity = f"{ACCOUNT}/b0123456789messages(PartitionKey='m',RowKey='ledger%7C')"
    assert classify("table", "GET", entity, {}, b"").name == "get entity"
    assert classify("table", "MERGE", entity, {}, b"").name == "merge entity"
    assert classify("table", "DELETE", entity, {}, b"").kind == "delete"
    assert classify("table", "POST", f"{ACCOUNT}/b0123456789messages", {}, b"").name == "insert entity"
    query = classify("table", "GET", f"{ACCOUNT}/b0123456789consent()", {"$filter": ["x"]}, b"")
    assert query == Op("table", "query entities", "read", "*consent")


def test_blob_leases_are_priced_as_other_operations_and_deletes_are_free() -> None:
    """A lease renewal is an 'other' blob operation; deleting a blob costs nothing."""
    lease = classify("blob", "PUT", f"{ACCOUNT}/azure-webjobs-hosts/locks/h/x", {"comp": ["lease"]}, b"")
    assert lease is not None and storage_price("blob", lease.kind) is PRICES["blob.other"]
    assert storage_price("blob", "delete").usd == 0


def test_a_tiny_run_counts_every_message_at_least_at_the_floor(azurite: Azurite, tmp_path: Path) -> None:
    """Nine messages, one transient 503 and one dead letter: the result file has the issue's fields, the
    proxy saw the producer, the host and the app, and the pipeline spent no less than the floor."""
    argv = ["--n", "9", "--transient", "1", "--dead", "1", "--idle", "2", "--results-dir", str(tmp_path)]
    returned = cost.main([*argv, "--log-dir", str(tmp_path / "logs"), "--storage", azurite.connection_string])
    record = json.loads((tmp_path / "cost.json").read_text())
    assert record == returned
    assert (record["name"], record["unit"], record["messages"]) == ("cost per message", "ops", 10)
    assert record["ratio"] == pytest.approx(record["value"] / record["floor"])
    assert record["value"] >= record["floor"] > 0
    # The floor does exactly one enqueue and one entity-group transaction per message.
    assert record["floor_by_kind"]["queue put message"] == pytest.approx(1.0)
    assert record["floor_by_kind"]["table batch"] == pytest.approx(1.0)
    assert {"producer", "host", "host worker"} <= record["storage_by_actor"].keys()
    assert record["storage_by_kind"]["queue put message"] >= 1.0  # each request enqueued once, retries again
    assert record["eventgrid"]["events_per_message"] >= 1.0 and record["eventgrid"]["ops_per_message"] > 0
    assert record["executions"]["send_message"]["per_message"] >= 1.0
    assert record["executions"]["record_event"]["per_message"] > 0
    assert record["app_insights_per_message"]["requests"] > 0 and record["app_insights_per_message"]["bytes"] > 0
    assert record["later_ops_per_message"] > 0 and record["idle"]["polling_ops_per_month"] > 0
    assert record["baseline"]["ops_per_message"] > 0 and record["usd_per_million"] > 0
    assert all(price["source"].startswith("https://azure.microsoft.com/") for price in record["prices"].values())
