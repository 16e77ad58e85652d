"""`boocontrol lease list` / `lease break`: who holds which host, for what, since when, until when.

Thin: the lease itself is `warehouse.lease`. Breaking a lease takes the host away from its holder (an action
executor finishes its current action and stops claiming; a benchmark run is cancelled and cleaned up; a
connector stops following that provider until it gets the lease back).
"""

from __future__ import annotations

import getpass
import socket

import click

from core.settings import Settings


def _when(lease: object) -> str:
    from warehouse.lease import Lease

    assert isinstance(lease, Lease)
    state = "EXPIRED" if lease.expired else "until"
    return (f"since {lease.acquired_at:%Y-%m-%d %H:%M:%S} UTC, last heartbeat {lease.heartbeat_at:%H:%M:%S}, "
            f"{state} {lease.expires_at:%H:%M:%S}")


@click.group()
def lease() -> None:
    """The fleet coordination lease: who holds which host (actions, benchmarks, evals) or follows it."""


@lease.command("list")
@click.option("--scope", type=click.Choice(["host", "follow"]), default=None, help="Only this scope")
@click.pass_obj
def lease_list(settings: Settings, scope: str | None) -> None:
    """Every lease: provider, scope, holder, purpose, since, last heartbeat, until (expired ones flagged)."""
    import psycopg

    from cli.errors import fail, postgres_unreachable
    from cli.main import require_schema  # here: cli.main imports this module
    from warehouse.db import psycopg_dsn
    from warehouse.lease import list_leases

    url = settings.resolved_database_url()
    require_schema(url)
    try:
        with psycopg.connect(psycopg_dsn(url), autocommit=True, connect_timeout=5) as conn:
            rows = list_leases(conn, scope)
    except psycopg.OperationalError as exc:
        fail(postgres_unreachable(url, exc))
    if not rows:
        click.echo("no leases held" + (f" (scope {scope})" if scope else ""))
        return
    for r in rows:
        click.echo(f"{r.provider_id}\t{r.scope}\t{r.holder}\t{r.purpose}\t{_when(r)}")


@lease.command("break")
@click.argument("provider")
@click.option("--scope", type=click.Choice(["host", "follow"]), default="host", show_default=True)
@click.pass_obj
def lease_break(settings: Settings, provider: str, scope: str) -> None:
    """Remove PROVIDER's lease whoever holds it (recorded in lease_events with who broke it)."""
    import psycopg

    from cli.errors import fail, postgres_unreachable
    from cli.main import require_schema
    from warehouse.db import psycopg_dsn
    from warehouse.lease import break_lease

    url = settings.resolved_database_url()
    require_schema(url)
    by = f"{getpass.getuser()}@{socket.gethostname()} (boocontrol lease break)"
    try:
        with psycopg.connect(psycopg_dsn(url), autocommit=True, connect_timeout=5) as conn:
            broken = break_lease(conn, provider, scope, by)
    except psycopg.OperationalError as exc:
        fail(postgres_unreachable(url, exc))
    if broken is None:
        fail(f"{provider} has no {scope} lease (see `boocontrol lease list`)")
    click.echo(f"broke {provider} ({scope}): it was held by {broken.holder} for {broken.purpose}, {_when(broken)}")
