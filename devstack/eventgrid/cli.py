"""`python -m devstack.eventgrid`: run a local Event Grid custom topic until SIGTERM or SIGINT.

Why a CLI: the local stack and users trying the status feed start the topic as its own process, as
they start the ACS emulator (`python -m devstack.acs`); it prints the endpoint and key to put in the
app's settings, and creates one webhook subscription per `--subscriber` (each must pass the
validation handshake, as in Event Grid).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from devstack.acs.models import EventSchema
from devstack.eventgrid.config import DEFAULT_KEY, DEFAULT_TOPIC, ConfigError, RetryPolicy, Subscription, TopicSettings
from devstack.eventgrid.server import TopicServer, TopicState
from devstack.loops import serve_until_stopped, until_terminated


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m devstack.eventgrid", description="Local Event Grid custom topic.")
    cli.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback)")
    cli.add_argument("--port", type=int, default=8766, help="plain HTTP port (0: any free port)")
    cli.add_argument("--tls-port", type=int, default=None, help="also serve HTTPS (self-signed) on this port")
    cli.add_argument("--tls-cert-file", type=Path, default=None, help="write the self-signed certificate here")
    cli.add_argument("--key", default=DEFAULT_KEY, help="the topic's access key (aeg-sas-key), base64")
    cli.add_argument("--allow-bearer", action="store_true", help="accept any 'Authorization: Bearer' token")
    cli.add_argument("--input-schema", choices=[str(item) for item in EventSchema], default="cloudevents")
    cli.add_argument("--topic", default=DEFAULT_TOPIC, help="the topic's resource id")
    cli.add_argument("--subscriber", action="append", default=[], help="webhook URL to deliver to (repeatable)")
    cli.add_argument("--max-events-per-batch", type=int, default=1, help="events per delivery (1-5000)")
    cli.add_argument("--preferred-batch-kb", type=int, default=64, help="preferred batch size in KB (1-1024)")
    cli.add_argument("--max-delivery-attempts", type=int, default=30, help="delivery attempts per event (1-30)")
    cli.add_argument("--event-ttl-minutes", type=float, default=1440, help="event time to live (1-1440 minutes)")
    cli.add_argument("--time-scale", type=float, default=1.0, help="multiply every retry delay and the TTL by this")
    cli.add_argument("--dead-letter-dir", type=Path, default=None, help="also write dead letters as JSON files here")
    cli.add_argument("--log-level", default="INFO", help="logging level (DEBUG, INFO, WARNING)")
    return cli


def subscriptions_from(args: argparse.Namespace) -> list[Subscription]:
    retry = RetryPolicy(
        max_delivery_attempts=args.max_delivery_attempts,
        event_ttl_minutes=args.event_ttl_minutes,
        time_scale=args.time_scale,
    )
    return [
        Subscription(
            name=f"subscriber-{index}",
            endpoint=url,
            max_events_per_batch=args.max_events_per_batch,
            preferred_batch_kb=args.preferred_batch_kb,
            retry=retry,
        )
        for index, url in enumerate(args.subscriber, start=1)
    ]


async def serve(args: argparse.Namespace) -> None:
    settings = TopicSettings(args.key, EventSchema(args.input_schema), args.topic, args.allow_bearer)
    subscriptions = subscriptions_from(args)  # checked before anything listens
    server = TopicServer(TopicState(settings, args.dead_letter_dir), args.host, args.port, args.tls_port)
    await server.start()
    try:
        if args.tls_cert_file and server.tls_cert_pem:
            args.tls_cert_file.write_bytes(server.tls_cert_pem)
        for subscription in subscriptions:
            await server.state.subscribe(subscription)
        print(banner(server, args.key, subscriptions), flush=True)
        await until_terminated()
    finally:
        await server.stop()


def banner(server: TopicServer, key: str, subscriptions: list[Subscription]) -> str:
    lines = [
        f"Event Grid topic listening on {server.endpoint}/api/events",
        f"  key (aeg-sas-key): {key}",
        f"  admin API:         {server.endpoint}/admin/health",
    ]
    if server.tls_endpoint:
        lines.append(f"  HTTPS (self-signed): {server.tls_endpoint}/api/events")
    lines += [f"  subscription {s.name}: {s.endpoint}" for s in subscriptions]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return serve_until_stopped(serve(args), ConfigError)
