"""`boocontrol gateway`: the OpenAI-compatible endpoint for the whole fleet (thin: the gateway is `gateway.server`)."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from pathlib import Path

import click

from core.settings import Settings

log = logging.getLogger("boocontrol.gateway")


def gateway_url(settings: Settings) -> str:
    host = settings.gateway_host
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{settings.gateway_port}/v1"


def _check_schema(url: str) -> None:
    """A database at an older schema is an error; one that cannot be reached is not (rows are spooled)."""
    from sqlalchemy.exc import OperationalError

    from cli.errors import fail
    from warehouse.db import make_engine
    from warehouse.migrate import SchemaOutOfDate, require_current_schema

    engine = make_engine(url, pool_size=1)
    try:
        require_current_schema(engine)
    except SchemaOutOfDate as exc:
        fail(str(exc))
    except OperationalError:
        log.warning("gateway: Postgres cannot be reached now; serving anyway, request rows are spooled until it is")
    finally:
        engine.dispose()


def run_gateway(settings: Settings, ready: asyncio.Event | None = None) -> None:
    from cli.errors import fail
    from cli.main import load_registry_or_exit
    from gateway.attribution import KeysError, load_keys
    from gateway.policies import PolicyWatcher
    from gateway.server import Gateway, GatewayOptions, serve
    from warehouse.db import make_engine, psycopg_dsn
    from warehouse.spool import Spool
    from warehouse.writer import WriteOptions, Writer

    reg = load_registry_or_exit(settings)
    try:
        keys = load_keys(settings.gateway_keys.get_secret_value() if settings.gateway_keys else None,
                         settings.gateway_keys_path)
    except KeysError as exc:
        fail(str(exc))
    if settings.gateway_require_key and not len(keys):
        fail("BOOCONTROL_GATEWAY_REQUIRE_KEY is set but no key is configured (BOOCONTROL_GATEWAY_KEYS or "
             f"{settings.gateway_keys_path}); nothing was started")
    policies_path: Path | None = settings.gateway_policies_path
    watcher = PolicyWatcher(policies_path)
    if watcher.error:
        fail(f"{watcher.error}; nothing was started")
    url = settings.resolved_database_url()
    _check_schema(url)
    replica = settings.gateway_replica or f"{socket.gethostname()}:{settings.gateway_port}"
    opts = GatewayOptions(replica=replica, connect_timeout_s=settings.gateway_connect_timeout_seconds,
                          first_byte_timeout_s=settings.gateway_first_byte_timeout_seconds,
                          cooldown_s=settings.gateway_cooldown_seconds, require_key=settings.gateway_require_key,
                          key_concurrency=settings.gateway_key_concurrency,
                          key_rate_per_minute=settings.gateway_key_rate_per_minute,
                          facts_refresh_s=settings.gateway_facts_refresh_seconds)
    spool_dir = settings.spool_dir / f"gateway-{''.join(c if c.isalnum() else '-' for c in replica)}"

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        writer = Writer(psycopg_dsn(url), Spool(spool_dir), WriteOptions(batch_rows=2000, flush_s=0.25))
        writer_stop = asyncio.Event()
        writer_task = asyncio.create_task(writer.run(writer_stop))
        engine = make_engine(url, pool_size=2)
        gw = Gateway(reg, keys, watcher, engine, writer.emit, opts)

        def started(port: int) -> None:
            click.echo(f"gateway: {gateway_url(settings)} (replica {replica}; {len(reg.providers)} provider(s), "
                       f"{len(keys)} key(s), policies: {policies_path if policies_path and policies_path.exists() else 'built-in'})",
                       err=True)
            if ready is not None:
                ready.set()

        try:
            await serve(gw, settings.gateway_host, settings.gateway_port, stop, started)
        finally:
            writer_stop.set()
            await writer_task
            engine.dispose()
            log.info("gateway stopped after %d request(s); %s", gw.requests_served, writer.stats_line())

    try:
        import uvloop

        uvloop.run(main())
    except OSError as exc:
        fail(f"gateway: cannot listen on {settings.gateway_host}:{settings.gateway_port}: {exc.strerror or exc}")


@click.command("gateway")
@click.pass_obj
def gateway(settings: Settings) -> None:
    """Serve the OpenAI-compatible gateway: /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings.

    `provider/model` goes to that provider, a bare id to the default provider, `auto:*` through its routing
    policy; failures fall back to the next candidate. Every request is attributed to its consumer and recorded.
    """
    run_gateway(settings)
