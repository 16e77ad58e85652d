"""`boocontrol` — the cockpit for a fleet of llama-swap instances.

Quick start (embedded defaults): `boocontrol up` starts a local Postgres in the data directory,
migrates it, starts the connector, Prefect and the Streamlit cockpit (and a demo fleet when no
provider is configured).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import click

from core.providers import Registry, RegistryError, load_registry
from core.settings import Settings, get_settings

log = logging.getLogger("boocontrol")


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)


def fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def load_registry_or_exit(settings: Settings) -> Registry:
    try:
        return load_registry(settings.fleet_path)
    except RegistryError as exc:
        fail(f"{exc}\nNothing was started.")
        raise AssertionError from exc


def require_schema(url: str) -> None:
    from sqlalchemy.exc import OperationalError

    from warehouse.db import make_engine
    from warehouse.migrate import SchemaOutOfDate, require_current_schema

    engine = make_engine(url, pool_size=1)
    try:
        require_current_schema(engine)
    except SchemaOutOfDate as exc:
        fail(str(exc))
    except OperationalError as exc:
        fail(f"cannot reach Postgres at {engine.url.render_as_string(hide_password=True)}: {str(exc.orig).strip()}")
    finally:
        engine.dispose()


@click.group(help=__doc__)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Overrides BOOCONTROL_DATA_DIR")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None) -> None:
    if data_dir is not None:
        import os

        os.environ["BOOCONTROL_DATA_DIR"] = str(data_dir.resolve())
        get_settings.cache_clear()
    ctx.obj = get_settings()
    configure_logging(ctx.obj.log_level)


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(settings: Settings) -> None:
    """Apply every pending migration (run before starting anything after an upgrade)."""
    from warehouse.migrate import upgrade

    upgrade(settings.resolved_database_url())
    click.echo("database schema is up to date")


@db.command("current")
@click.pass_obj
def db_current(settings: Settings) -> None:
    """Show the schema revision of the database and the one this code needs."""
    from warehouse.db import make_engine
    from warehouse.migrate import current_revision, head_revision

    engine = make_engine(settings.resolved_database_url(), pool_size=1)
    click.echo(f"database: {current_revision(engine) or 'empty'}; code needs: {head_revision()}")
    engine.dispose()


@cli.group()
def providers() -> None:
    """The provider registry."""


@providers.command("list")
@click.pass_obj
def providers_list(settings: Settings) -> None:
    """Validate the registry file and list its providers."""
    reg = load_registry_or_exit(settings)
    for p in reg.providers:
        marker = " (default)" if p.id == reg.default_provider else ""
        key = f" key from ${p.api_key_env}" if p.api_key_env else ""
        click.echo(f"{p.id}{marker}\t{p.kind}\t{p.base_url}\t{p.label}{key}")


@cli.command()
@click.option("--registry", "registry_path", type=click.Path(path_type=Path), default=None,
              help="Provider registry YAML (default: BOOCONTROL_FLEET_FILE or DATA_DIR/fleet.yaml)")
@click.pass_obj
def connect(settings: Settings, registry_path: Path | None) -> None:
    """Run the resident connector: follow every provider and land what happens in Postgres."""
    if registry_path is not None:
        settings = settings.model_copy(update={"fleet_file": registry_path})
    reg = load_registry_or_exit(settings)
    if not reg.providers:
        fail(f"{settings.fleet_path}: no providers configured")
    url = settings.resolved_database_url()
    require_schema(url)
    run_connector(settings, reg)


def run_connector(settings: Settings, reg: Registry) -> None:
    from connectors.runner import Connector, ConnectorOptions
    from warehouse.db import psycopg_dsn

    opts = ConnectorOptions(batch_rows=settings.connector_batch_rows, flush_s=settings.connector_flush_seconds,
                            buffer_rows=settings.connector_buffer_rows,
                            perf_poll_s=settings.connector_perf_poll_seconds,
                            liveness_s=settings.connector_liveness_seconds,
                            fetch_captures=settings.connector_capture_fetch)
    conn = Connector(reg, psycopg_dsn(settings.resolved_database_url()), settings.spool_dir, opts)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("following %d provider(s): %s", len(reg.providers), ", ".join(reg.ids()))
        await conn.run(stop)

    asyncio.run(main())


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
