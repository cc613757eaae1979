"""`python -m devstack.acs`: run the ACS emulator in the foreground until SIGTERM or SIGINT.

Why a CLI: users trying the app without Azure, and the local Functions runner, start the emulator
as its own process; it prints where it listens and a connection string to paste into settings.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from devstack.acs.config import DEFAULT_KEY, ConfigError, DeliveryPolicy, Settings
from devstack.acs.emulator import connection_string
from devstack.acs.models import DEFAULT_TOPIC, DataCasing, EventSchema
from devstack.acs.server import EmulatorServer, Listen
from devstack.loops import serve_until_stopped, until_terminated


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m devstack.acs", description="Local Azure Communication Services.")
    cli.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback)")
    cli.add_argument("--port", type=int, default=8765, help="plain HTTP port (0: any free port)")
    cli.add_argument("--access-key", default=DEFAULT_KEY, help="base64 access key that requests must be signed with")
    cli.add_argument("--webhook", default=None, help="Event Grid webhook URL to deliver events to")
    cli.add_argument("--report-delay", type=float, default=1.0, help="seconds before delivery reports")
    cli.add_argument("--late-delay", type=float, default=None, help="seconds before late reports (10x report delay)")
    cli.add_argument("--operation-delay", type=float, default=None, help="seconds an email operation runs")
    cli.add_argument("--tls-port", type=int, default=None, help="also serve HTTPS (self-signed) on this port")
    cli.add_argument("--tls-cert-file", type=Path, default=None, help="write the self-signed certificate here")
    cli.add_argument("--event-schema", choices=[str(item) for item in EventSchema], default="eventgrid")
    cli.add_argument("--data-casing", choices=[str(item) for item in DataCasing], default="camel")
    cli.add_argument("--topic", default=DEFAULT_TOPIC, help="Event Grid topic (the ACS resource id)")
    cli.add_argument("--allow-bearer", action="store_true", help="accept any 'Authorization: Bearer' token")
    cli.add_argument("--lenient-host", action="store_true", help="also accept signatures over Host + '/'")
    cli.add_argument(
        "--service-window", action="store_true", help="fail WhatsApp text to users silent for 24 hours (131047)"
    )
    cli.add_argument("--delivery-attempts", type=int, default=8, help="webhook delivery attempts per event")
    cli.add_argument("--max-events-per-batch", type=int, default=1, help="events per webhook request (1-5000)")
    cli.add_argument("--preferred-batch-kb", type=int, default=64, help="preferred batch size in KB (1-1024)")
    cli.add_argument("--log-level", default="INFO", help="logging level (DEBUG, INFO, WARNING)")
    return cli


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        access_key=args.access_key,
        webhook_url=args.webhook,
        report_delay=args.report_delay,
        late_delay=args.late_delay,
        operation_delay=args.operation_delay,
        schema=EventSchema(args.event_schema),
        casing=DataCasing(args.data_casing),
        topic=args.topic,
        allow_bearer=args.allow_bearer,
        lenient_host=args.lenient_host,
        service_window=args.service_window,
        max_events_per_batch=args.max_events_per_batch,
        preferred_batch_kb=args.preferred_batch_kb,
        delivery=DeliveryPolicy(max_attempts=args.delivery_attempts),
    )


def banner(server: EmulatorServer, access_key: str, cert_file: Path | None) -> str:
    lines = [
        f"ACS emulator listening on {server.endpoint}",
        f"  connection string: {connection_string(server.endpoint, access_key)}",
        f"  admin API:         {server.endpoint}/admin/health",
    ]
    if server.tls_endpoint:
        lines.append(f"  HTTPS (self-signed): {server.tls_endpoint}")
        lines.append(f"  TLS connection string: {connection_string(server.tls_endpoint, access_key)}")
        if cert_file:
            lines.append(f"  certificate: {cert_file}")
    return "\n".join(lines)


async def serve(args: argparse.Namespace) -> None:
    server = EmulatorServer(settings_from(args), Listen(args.host, args.port, args.tls_port))
    await server.start()
    try:
        if args.tls_cert_file and server.tls_cert_pem:
            args.tls_cert_file.write_bytes(server.tls_cert_pem)
        print(banner(server, args.access_key, args.tls_cert_file), flush=True)
        await until_terminated()
    finally:
        await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return serve_until_stopped(serve(args), ConfigError)
