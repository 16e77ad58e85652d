"""`boocontrol` — the cockpit for a fleet of llama-swap instances.

Quick start (embedded defaults): `boocontrol up` starts a local Postgres in the data directory,
migrates it, starts the connector, Prefect and the Streamlit cockpit (and a demo fleet when no
provider is configured).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import click

from cli.errors import REGISTRY_HELP, expected_failure, fail, postgres_unreachable
from core.providers import Registry, RegistryError, load_registry
from core.settings import Settings, get_settings

log = logging.getLogger("boocontrol")


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def load_registry_or_exit(settings: Settings, starting: bool = True, need_providers: bool = False) -> Registry:
    """The registry, or exit with one line naming the file (and that nothing was started, when starting)."""
    tail = "; nothing was started" if starting else ""
    try:
        reg = load_registry(settings.fleet_path)
    except RegistryError as exc:
        fail(f"{expected_failure(exc, None)}{tail}")
    if need_providers and not reg.providers:
        fail(f"{reg.source}: the registry lists no providers; add one under 'providers:' ({REGISTRY_HELP}){tail}")
    return reg


def settings_or_exit() -> Settings:
    from pydantic import ValidationError

    try:
        return get_settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "BOOCONTROL_" + "__".join(str(p) for p in err["loc"]).upper()
            problems.append(f"{name}: {str(err['msg']).removeprefix('Value error, ')}")
        fail("; ".join(problems))


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
        fail(postgres_unreachable(url, exc))
    finally:
        engine.dispose()


class BooGroup(click.Group):
    """The root command: every expected failure raised anywhere below is one `Error: …` line and exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            settings = ctx.obj if isinstance(ctx.obj, Settings) else None
            message = expected_failure(exc, settings.resolved_database_url() if settings else None)
            if message is None:
                raise
            fail(message)


@click.group(cls=BooGroup, help=__doc__)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Overrides BOOCONTROL_DATA_DIR")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None) -> None:
    import os

    if data_dir is not None:
        os.environ["BOOCONTROL_DATA_DIR"] = str(data_dir.resolve())
        get_settings.cache_clear()
    settings = settings_or_exit()
    if ctx.invoked_subcommand != "up":  # `up` starts its own instance; every other command finds the running one
        from cli.instance import adopt, find_instance

        explicit = settings.data_dir if os.environ.get("BOOCONTROL_DATA_DIR") else None
        inst = find_instance(explicit)
        if inst is not None:
            settings = adopt(settings, inst, os.environ)
        ctx.meta["boocontrol.instance"] = inst
    ctx.obj = settings
    configure_logging(settings.log_level)


def running_instance(ctx: click.Context) -> Any:
    """The `boocontrol up` this command found (a `cli.instance.Instance`), or None."""
    return ctx.meta.get("boocontrol.instance")


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(settings: Settings) -> None:
    """Apply every pending migration (run before starting anything after an upgrade)."""
    from sqlalchemy.exc import OperationalError

    from warehouse.migrate import upgrade

    url = settings.resolved_database_url()
    try:
        upgrade(url)
    except OperationalError as exc:
        fail(postgres_unreachable(url, exc))
    click.echo("database schema is up to date")


@db.command("current")
@click.pass_obj
def db_current(settings: Settings) -> None:
    """Show the schema revision of the database and the one this code needs."""
    from sqlalchemy.exc import OperationalError

    from warehouse.db import make_engine
    from warehouse.migrate import current_revision, head_revision

    url = settings.resolved_database_url()
    engine = make_engine(url, pool_size=1)
    try:
        current = current_revision(engine)
    except OperationalError as exc:
        fail(postgres_unreachable(url, exc))
    finally:
        engine.dispose()
    click.echo(f"database: {current or 'empty'}; code needs: {head_revision()}")


@cli.group()
def providers() -> None:
    """The provider registry."""


@providers.command("list")
@click.pass_obj
def providers_list(settings: Settings) -> None:
    """Validate the registry file and list its providers (warns about API key variables that are not set)."""
    reg = load_registry_or_exit(settings, starting=False, need_providers=True)
    for p in reg.providers:
        marker = " (default)" if p.id == reg.default_provider else ""
        key = f" key from ${p.api_key_env}" if p.api_key_env else ""
        click.echo(f"{p.id}{marker}\t{p.kind}\t{p.base_url}\t{p.label}{key}")
    for p in reg.providers:
        warning = p.missing_key_message()
        if warning is not None:
            click.echo(f"Warning: {warning}", err=True)


@cli.command()
@click.option("--registry", "registry_path", type=click.Path(path_type=Path), default=None,
              help="Provider registry YAML (default: BOOCONTROL_FLEET_FILE or DATA_DIR/fleet.yaml)")
@click.pass_obj
def connect(settings: Settings, registry_path: Path | None) -> None:
    """Run the resident connector: follow every provider and land what happens in Postgres."""
    if registry_path is not None:
        settings = settings.model_copy(update={"fleet_file": registry_path})
    reg = load_registry_or_exit(settings, need_providers=True)
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
                            fetch_captures=settings.connector_capture_fetch,
                            lease_ttl_s=settings.connector_lease_seconds,
                            take_over_local_dead=settings.connector_take_over_local_dead)
    conn = Connector(reg, psycopg_dsn(settings.resolved_database_url()), settings.spool_dir, opts)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("following %d provider(s): %s", len(reg.providers), ", ".join(reg.ids()))
        await conn.run(stop)

    import uvloop  # libuv's loop: less CPU per followed host than asyncio's (bench/bench_fanout.py --compare-root)

    uvloop.run(main())


@cli.command("demo-fleet")
@click.option("-n", "--count", default=3, show_default=True, type=click.IntRange(1, 10000),
              help="Number of simulated llama-swap instances")
@click.option("--base-port", default=19400, show_default=True, type=click.IntRange(1, 65535))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--rpm", "requests_per_minute", default=6.0, show_default=True, help="Requests per minute per instance")
@click.option("--registry-out", type=click.Path(path_type=Path), default=None,
              help="Also write a provider registry listing the demo instances")
def demo_fleet(count: int, base_port: int, host: str, seed: int, requests_per_minute: float,
               registry_out: Path | None) -> None:
    """Run N simulated llama-swap instances on loopback with live traffic (no GPU needed)."""
    from demo.fleet import run_demo_fleet, write_demo_registry

    if registry_out is not None:
        write_demo_registry(registry_out, count, host, base_port)
    click.echo(f"demo fleet: {count} instance(s) on http://{host}:{base_port}..{base_port + count - 1}")

    async def main() -> None:
        task = asyncio.ensure_future(run_demo_fleet(count, host, base_port, seed, requests_per_minute))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    import uvloop  # the simulated hosts stand in for other machines: spend as little of this one as possible

    uvloop.run(main())


@cli.group()
def actions() -> None:
    """Host actions (warm, unload, cancel, capture), serialized per host and audited."""


@actions.command("run")
@click.pass_obj
def actions_run(settings: Settings) -> None:
    """Run the action executor: performs queued actions one at a time per host."""
    import threading

    from actions.executor import run_forever
    from warehouse.db import make_engine

    url = settings.resolved_database_url()
    require_schema(url)
    engine = make_engine(url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run_forever(engine, lambda: load_registry_or_exit(settings), None, stop)


PORT = click.IntRange(1, 65535)


@cli.command()
@click.option("--demo-count", default=3, show_default=True, type=click.IntRange(1, 1000),
              help="Demo instances when no provider is configured")
@click.option("--demo-base-port", default=19400, show_default=True, type=PORT, help="Port of the first demo instance")
@click.option("--ui-port", default=8501, show_default=True, type=PORT)
@click.option("--prefect-port", default=4200, show_default=True, type=PORT)
@click.option("--no-prefect", is_flag=True, help="Do not start the Prefect server and worker")
@click.pass_obj
def up(settings: Settings, demo_count: int, demo_base_port: int, ui_port: int, prefect_port: int,
       no_prefect: bool) -> None:
    """Start everything on embedded defaults; Ctrl-C stops it all cleanly.

    Before starting anything it checks the data directory, every port it will use (naming the process that
    holds one) and the database; other shells find the running cockpit through its state file.
    """
    from cli.up import run_up

    sys.exit(run_up(settings, demo_count=demo_count, ui_port=ui_port, prefect_port=prefect_port,
                    with_prefect=not no_prefect, demo_base_port=demo_base_port))


@cli.command()
@click.pass_obj
def status(settings: Settings) -> None:
    """Say what `up` is running (the `up` of --data-dir / BOOCONTROL_DATA_DIR, else the one started last)."""
    from cli.instance import state_path
    from cli.services import read_status

    rows = read_status(state_path(settings.data_dir))
    if not rows:
        click.echo("nothing is running (no `boocontrol up` state in " + str(settings.data_dir) + ")")
        return
    for name, st, detail in rows:
        click.echo(f"{name:<16}{st:<26}{detail}")


@cli.command("env")
@click.pass_context
def env_cmd(ctx: click.Context) -> None:
    """Print `export` lines reaching the running cockpit (for other tools; `boocontrol` finds it by itself)."""
    from cli.instance import shell_exports

    inst = running_instance(ctx)
    if inst is None:
        fail(f"no `boocontrol up` is running for {ctx.obj.data_dir}; start it with `bash scripts/up.sh`")
    click.echo("\n".join(shell_exports(inst)))


@cli.command("prefect", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                          "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def prefect_cmd(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Run the `prefect` CLI against the running cockpit's Prefect server (e.g. `boocontrol prefect deployment
    run fleet-digest/daily`); PREFECT_API_URL, when set, wins."""
    import os

    env = dict(os.environ)
    inst = running_instance(ctx)
    if not env.get("PREFECT_API_URL"):
        if inst is None or not inst.prefect_api:
            why = "runs without Prefect (--no-prefect)" if inst is not None else "is running"
            fail(f"no `boocontrol up` with a Prefect server {why} for {ctx.obj.data_dir}; start it with "
                 "`bash scripts/up.sh`, or export PREFECT_API_URL to use another Prefect server")
        env["PREFECT_API_URL"] = inst.prefect_api
        env.setdefault("PREFECT_HOME", str(inst.data_dir / "prefect"))
    env.update({"BOOCONTROL_DATA_DIR": str(ctx.obj.data_dir), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "prefect", *args], env)


def _register_subgroups() -> None:
    from cli.bench import bench
    from cli.config import config
    from cli.evals import evals
    from cli.gateway import gateway
    from cli.lease import lease
    from cli.route import route

    cli.add_command(bench)
    cli.add_command(config)
    cli.add_command(evals)
    cli.add_command(lease)
    cli.add_command(gateway)
    cli.add_command(route)


_register_subgroups()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
