"""Engine construction (one place that turns a URL into a SQLAlchemy engine)."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine


def make_engine(url: str, pool_size: int = 5) -> Engine:
    return create_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True, future=True)


def psycopg_dsn(url: str) -> str:
    """A libpq-style URL for raw psycopg connections (COPY paths)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)
