"""Schema migrations (Alembic) and the start-up guard that refuses a database older than the code."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

INI = Path(__file__).with_name("alembic.ini")


class SchemaOutOfDate(RuntimeError):
    pass


def alembic_config(url: str) -> Config:
    cfg = Config(str(INI))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_heads()
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def require_current_schema(engine: Engine) -> None:
    """Refuse to run code that expects a newer schema than the database has."""
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        have = current or "empty (no migrations applied)"
        raise SchemaOutOfDate(
            f"the database schema is at {have} but this version of BooControl needs {head}: "
            "run `boocontrol db upgrade` first"
        )
