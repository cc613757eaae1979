"""`make run`: the whole pipeline on the local stack, with a demo batch and a summary table.

Starts Azurite (a fresh data folder), the ACS emulator, the status feed's local Event Grid topic (with a
webhook subscriber standing for a downstream system) and the app in the local Functions runner;
opts one number out by an inbound STOP; has four WhatsApp users write in (opening their 24-hour
service window, which the demo enforces as Azure does, and so does the emulator); sends a batch across
every channel and simulated outcome, WhatsApp templates and the window included (through the producer
client, the HTTP endpoint, and a raw plain-text queue message); waits for the reports and for
reconciliation to expire what never reports; prints what happened to each message, and what the
feed's subscriber received for it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from devstack.acs import AcsAdminClient
from devstack.feedsink import FeedSink
from devstack.stack import STATE_DIR, LocalStack

TERMINAL = {"Delivered", "Read", "Failed", "Expired", "Rejected", "Suppressed", "DeadLettered", "Unknown"}
OPTED_OUT = "+14255550150"
WROTE_IN = ("+14255550100", "+14255550107", "+14255550105", "+14255550101")  # their window is open
NEVER_WROTE = "+14255550108"
console = Console(width=max(Console().width, 150))


@dataclass(frozen=True)
class Case:
    scenario: str
    request: dict[str, Any]
    expected: str
    chain: str | None = None  # the fallback chain's outcome in words, for a request with alternatives


def _sms(to: str) -> dict[str, Any]:
    return {"channel": "sms", "to": to, "content": {"text": "hello from the demo"}}


def _email(to: str) -> dict[str, Any]:
    return {"channel": "email", "to": to, "content": {"subject": "Your order", "text": "hello from the demo"}}


def _wa(to: str, text: str = "hello from the demo") -> dict[str, Any]:
    return {"channel": "whatsapp", "to": to, "content": {"text": text}}


def _wa_template(to: str, name: str, values: dict[str, str]) -> dict[str, Any]:
    template = {"name": name, "language": "en_US", "values": values, "bodyBindings": list(values)}
    return {"channel": "whatsapp", "to": to, "content": {"template": template}}


def _or_sms(request: dict[str, Any], to: str) -> dict[str, Any]:
    """The request with an SMS alternative, used when it fails or WhatsApp refuses it (the text derived)."""
    return {**request, "fallback": [{"channel": "sms", "to": to}]}


_ORDER = {"1": "A-17", "2": "on its way"}
PAUSED_TEMPLATE = "whatsapp paused template → refused"
CASES = [
    Case("sms delivered", _sms("+14255550100"), "Delivered"),
    Case("sms failed by carrier", _sms("+14255550101"), "Failed"),
    Case("sms never reports → reconcile", _sms("+14255550102"), "Expired"),
    Case("sms late report", _sms("+14255550103"), "Delivered"),
    Case("sms duplicate reports", _sms("+14255550104"), "Delivered"),
    Case("sms reports out of order", _sms("+14255550105"), "Delivered"),
    Case("sms refused at send", _sms("+14255550106"), "Failed"),
    Case("sms to an opted-out number", _sms(OPTED_OUT), "Suppressed"),
    Case("sms with a bad number", _sms("555-0100"), "Rejected"),
    Case("email delivered", _email("ann@example.com"), "Delivered"),
    Case("email bounced", _email("bob+bounce@example.com"), "Failed"),
    Case("email quarantined", _email("cy+quarantined@example.com"), "Failed"),
    Case("email opened and clicked", _email("dee+engage@example.com"), "Delivered"),
    Case("email duplicate reports", _email("eve+duplicate@example.com"), "Delivered"),
    Case("email never reports → reconcile", _email("fay+noreport@example.com"), "Expired"),
    Case("email operation fails", _email("gil+opfail@example.com"), "Failed"),
    Case("whatsapp delivered", _wa("+14255550100"), "Delivered"),
    Case("whatsapp read", _wa("+14255550107"), "Read"),
    Case("whatsapp statuses in reverse", _wa("+14255550105"), "Read"),
    Case("whatsapp failed", _wa("+14255550101"), "Failed"),
    Case("whatsapp approved template, never wrote in", _wa_template(NEVER_WROTE, "order_update", _ORDER), "Delivered"),
    Case(PAUSED_TEMPLATE, _wa_template("+14255550109", "spring_sale", {"1": "20%"}), "Rejected"),
    Case("whatsapp text, never wrote in → refused", _wa(NEVER_WROTE), "Rejected"),
    Case(
        "whatsapp failed → falls back to sms",
        _or_sms(_wa("+14255550101", "your parcel is on its way"), "+14255550100"),
        "Failed",
        "delivered by sms after whatsapp failed",
    ),
    Case(
        "whatsapp outside the window → sms",
        _or_sms(_wa(NEVER_WROTE, "your table is ready"), "+14255550100"),
        "Rejected",
        "delivered by sms after whatsapp was refused",
    ),
]


def _http(method: str, url: str, body: object | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


async def _enqueue(stack: LocalStack, cases: list[Case]) -> list[str]:
    from azure.storage.queue.aio import QueueClient

    from shared.client import ContactMessagesClient

    queue = stack.settings["SEND_QUEUE"]
    client = ContactMessagesClient.from_connection_string(stack.settings["AzureWebJobsStorage"], queue)
    try:
        ids = [await client.enqueue(case.request) for case in cases]
    finally:
        await client.close()
    async with QueueClient.from_connection_string(stack.settings["AzureWebJobsStorage"], queue) as raw:
        await raw.send_message('{"channel": "sms", "note": "plain text, not base64"}')  # poisoned by the host
    return ids


def _send_batch(stack: LocalStack) -> list[tuple[Case, str]]:
    queued = [c for c in CASES if c.scenario != "sms with a bad number"][1:]
    ids = asyncio.run(_enqueue(stack, queued))
    sent = list(zip(queued, ids, strict=True))
    first = CASES[0]
    status, body = _http("POST", f"{stack.app_url}/api/messages", {**first.request, "id": str(uuid.uuid4())})
    assert status == 202, body
    sent.insert(0, (first, body["id"]))
    bad = next(c for c in CASES if c.scenario == "sms with a bad number")
    status, body = _http("POST", f"{stack.app_url}/api/messages", bad.request)
    console.print(f"HTTP intake refused the bad number with {status}: {body['errors'][0]['message']}")
    paused = next(c for c in CASES if c.scenario == PAUSED_TEMPLATE)
    status, body = _http("POST", f"{stack.app_url}/api/messages", paused.request)
    console.print(f"HTTP intake refused the paused template with {status}: {body['errors'][0]['message']}")
    bad_id = str(uuid.uuid4())
    asyncio.run(_enqueue_raw_json(stack, {**bad.request, "id": bad_id}))
    sent.append((bad, bad_id))
    return sent


async def _enqueue_raw_json(stack: LocalStack, request: dict[str, Any]) -> None:
    """An invalid request straight onto the queue, as a producer without the client might."""
    from azure.storage.queue.aio import QueueClient

    from shared.adapters.queues import encode

    async with QueueClient.from_connection_string(
        stack.settings["AzureWebJobsStorage"], stack.settings["SEND_QUEUE"]
    ) as raw:
        await raw.send_message(encode(json.dumps(request)))


def _wait(stack: LocalStack, sent: list[tuple[Case, str]], timeout: float = 120.0) -> dict[str, dict[str, Any]]:
    views: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    with console.status("waiting for delivery reports and reconciliation...") as spinner:
        while time.monotonic() < deadline:
            for _, message_id in sent:
                status, view = _http("GET", f"{stack.app_url}/api/messages/{message_id}")
                if status == 200:
                    views[message_id] = view
            done = sum(1 for v in views.values() if v.get("status") in TERMINAL)
            spinner.update(f"waiting for delivery reports and reconciliation... {done}/{len(sent)} final")
            if done == len(sent) and all(_settled(c, views[m]) for c, m in sent):
                break
            time.sleep(1)
    return views


def _settled(case: Case, view: dict[str, Any]) -> bool:
    if case.chain is not None and view.get("chainOutcome") != case.chain:
        return False  # its alternative is still on its way
    return view.get("status") == case.expected or case.expected not in {"Read", "Delivered"}


def _subscribe(stack: LocalStack, sink: FeedSink) -> None:
    """A downstream system's webhook subscription on the status feed's topic (the handshake included)."""
    body = {"name": "demo-crm", "endpoint": sink.url, "maxEventsPerBatch": 10}
    status, answer = _http("POST", f"{stack.feed_url}/admin/subscriptions", body)
    assert status == 201, answer


def _feed_report(sink: FeedSink, sent: list[tuple[Case, str]], views: dict[str, dict[str, Any]]) -> bool:
    """What the subscriber received, deduplicated by id and in sequence order, against the ledger."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        histories = sink.histories()
        if all(_feed_caught_up(histories.get(m, []), views.get(m, {})) for _, m in sent):
            break
        time.sleep(0.5)
    table = Table(title="Status feed: what a webhook subscriber received (deduplicated by id, by sequence)")
    for column in ("scenario", "events", "statuses in sequence order", "matches the ledger"):
        table.add_column(column)
    ok = True
    for case, message_id in sent:
        events = sink.histories().get(message_id, [])
        caught_up = _feed_caught_up(events, views.get(message_id, {}))
        ok &= caught_up
        statuses = " → ".join(e["data"]["status"] for e in events)
        table.add_row(case.scenario, str(len(events)), statuses, "[green]yes" if caught_up else "[red]no")
    console.print(table)
    console.print(f"feed events delivered to the subscriber (with Event Grid's duplicates): {sink.received()}")
    return ok


def _feed_caught_up(events: list[dict[str, Any]], view: dict[str, Any]) -> bool:
    """Contiguous sequence numbers from 1, ending at the status the ledger holds."""
    sequences = [int(e["data"]["sequence"]) for e in events]
    return (
        bool(events)
        and sequences == list(range(1, len(events) + 1))
        and events[-1]["data"]["status"] == view.get("status")
    )


def _report(stack: LocalStack, sent: list[tuple[Case, str]], views: dict[str, dict[str, Any]]) -> bool:
    table = Table(title="Contact Messages demo: what happened to each message")
    for column in ("scenario", "channel", "recipient", "expected", "final", "events", "detail"):
        table.add_column(column)
    ok = True
    for case, message_id in sent:
        view = views.get(message_id, {})
        final = view.get("status", "missing")
        chained = case.chain is None or view.get("chainOutcome") == case.chain
        ok &= final == case.expected and chained
        mark = "[green]" if final == case.expected else "[red]"
        detail = str(view.get("reason") or "")[:48]
        if case.chain is not None:  # the request's fallback chain: where its message went in the end
            detail = f"{'[green]' if chained else '[red]'}chain: {view.get('chainOutcome', 'no fallback yet')}"
        table.add_row(
            case.scenario,
            case.request["channel"],
            view.get("recipientMasked", "-"),
            case.expected,
            f"{mark}{final}",
            str(len(view.get("events", []))),
            detail,
        )
    console.print(table)
    for case, message_id in sent:
        if case.chain is not None:
            view = views.get(message_id, {})
            path = " → ".join(f"{m['id']} ({m['channel']}: {m['status']})" for m in view.get("chain", []))
            console.print(f"fallback chain of '{case.scenario}': {path}; outcome: {view.get('chainOutcome')}")
    admin = AcsAdminClient(stack.acs_url)
    duplicates = admin.duplicates()
    console.print(f"sends accepted by the emulator: {len(admin.sends())}; duplicate sends: {len(duplicates)}")
    depth = asyncio.run(_poison_depth(stack))
    console.print(
        f"poison queue depth: {depth} (the reconcile timer records what reaches it, the plain-text "
        "message among it, verbatim in the dead-letters table: `contactmsg dead-letters list`)"
    )
    return ok and not duplicates


async def _poison_depth(stack: LocalStack) -> int:
    from azure.storage.queue.aio import QueueClient

    queue = f"{stack.settings['SEND_QUEUE']}-poison"
    async with QueueClient.from_connection_string(stack.settings["AzureWebJobsStorage"], queue) as client:
        props = await client.get_queue_properties()
    return int(props.approximate_message_count or 0)


def _await_inbound_delivered(admin: AcsAdminClient, timeout: float = 60.0) -> None:
    """Wait until the app has acknowledged every inbound message (the emulator logs a delivery once the
    webhook answered), so sends are checked against the recorded opt-out and service windows."""
    wanted = len(admin.inbound_log())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivered = [e for e in admin.events() if e["eventType"].endswith("Received") and e["outcome"] == "delivered"]
        if len(delivered) >= wanted:
            return
        time.sleep(0.2)
    raise TimeoutError("the app did not acknowledge the inbound messages")


def main() -> int:
    data = STATE_DIR / "demo" / "azurite"
    shutil.rmtree(data, ignore_errors=True)
    overrides = {
        "RECONCILE_SCHEDULE": "*/5 * * * * *",
        "DELIVERY_SLA_MINUTES": json.dumps({"sms": 0.25, "email": 0.25, "whatsapp": 0.25}),
        "TABLE_PREFIX": "demo",
        "WHATSAPP_SERVICE_WINDOW": "enforce",
    }
    stack = LocalStack.on_free_ports(data_dir=data, overrides=overrides, log_dir=STATE_DIR / "demo" / "logs")
    console.print("starting Azurite, the ACS emulator, the status feed's topic and the app in the local runner...")
    stack.start()
    sink = FeedSink().start()
    try:
        console.print(stack.describe())
        _subscribe(stack, sink)
        admin = AcsAdminClient(stack.acs_url)
        admin.configure(serviceWindow=True)
        admin.inbound(OPTED_OUT, stack.settings["SMS_SENDERS"].split(",")[0], "STOP")
        for user in WROTE_IN:
            admin.inbound(user, stack.settings["WHATSAPP_CHANNELS"].split(",")[0], "hi", channel="whatsapp")
        _await_inbound_delivered(admin)
        sent = _send_batch(stack)
        console.print(f"sent {len(sent)} requests across sms, email and whatsapp")
        views = _wait(stack, sent)
        reported = _report(stack, sent, views)
        fed = _feed_report(sink, sent, views)
        return 0 if reported and fed else 1
    finally:
        sink.stop()
        stack.stop()


if __name__ == "__main__":
    raise SystemExit(main())
