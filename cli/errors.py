"""The one way the `boocontrol` command reports an expected failure: one `Error: …` line, exit 2.

An expected failure is something the user can fix (Postgres down or unreachable, a malformed
`BOOCONTROL_*` variable, a missing, invalid or empty registry, an unknown provider or model, a port in
use, an old schema). It says what is wrong and what to do, on one line on stderr, and exits 2 like click's
usage errors. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

EXIT_EXPECTED = 2
REGISTRY_HELP = "see README, 'The provider registry'"


def fail(message: str, code: int = EXIT_EXPECTED) -> NoReturn:
    """An expected failure: one line on stderr, no traceback, exit 2."""
    click.echo(f"Error: {' '.join(message.split())}", err=True)
    sys.exit(code)


def postgres_unreachable(url: str, exc: BaseException) -> str:
    """One line for an OperationalError on connect: where, why (first line of the driver's message), what to do."""
    from sqlalchemy.engine import make_url

    orig = getattr(exc, "orig", None) or exc
    why = (str(orig).strip().splitlines() or [orig.__class__.__name__])[0]
    where = make_url(url).render_as_string(hide_password=True)
    return (f"cannot reach Postgres at {where}: {why} (start it: `boocontrol up` runs the embedded one; "
            "or point BOOCONTROL_DATABASE_URL at yours)")


def expected_failure(exc: BaseException, database_url: str | None) -> str | None:
    """The one-line message for an exception that is an expected failure, else None (a bug: keep the traceback).

    Used once, around every command (`cli.main.BooGroup`), so a command that reaches Postgres or the registry
    needs no handler of its own.
    """
    from core.providers import RegistryError

    if isinstance(exc, RegistryError):
        if "not found" in str(exc):
            return f"{exc} (create it as in README, 'The provider registry', or set BOOCONTROL_FLEET_FILE)"
        return str(exc)
    if isinstance(exc, KeyError) and str(exc.args[0] if exc.args else "").startswith("unknown provider"):
        return f"{exc.args[0]} (see `boocontrol providers list`)"
    sa = sys.modules.get("sqlalchemy.exc")
    pg = sys.modules.get("psycopg")
    orig = getattr(exc, "orig", None)
    if pg is not None and isinstance(orig or exc, pg.errors.UndefinedTable):
        return "the database has no BooControl schema yet; run `boocontrol db upgrade` (or `boocontrol up`) first"
    if (sa is not None and isinstance(exc, sa.OperationalError)) or (
            pg is not None and isinstance(exc, pg.OperationalError)):
        return postgres_unreachable(database_url or "postgresql://?", exc)
    return None
