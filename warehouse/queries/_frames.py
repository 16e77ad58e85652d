"""Turning a parameterized SQL statement into a typed polars DataFrame.

Every query function in this package takes either an open ``Connection`` or an ``Engine`` (then it
opens and closes its own connection) and returns a DataFrame whose columns and dtypes are fixed by the
query's declared schema, so an empty result has the same shape as a full one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import polars as pl
from sqlalchemy import Connection, Engine, TextClause

Db = Connection | Engine
Schema = Mapping[str, Any]  # column name -> polars dtype


@contextlib.contextmanager
def connected(db: Db) -> Iterator[Connection]:
    if isinstance(db, Engine):
        with db.connect() as conn:
            yield conn
    else:
        yield db


def frame(db: Db, stmt: TextClause, params: Mapping[str, Any], schema: Schema) -> pl.DataFrame:
    """Run ``stmt`` with bound ``params`` and return its rows as a DataFrame with ``schema``."""
    with connected(db) as conn:
        result = conn.execute(stmt, dict(params))
        keys = list(result.keys())
        rows = [tuple(r) for r in result]
    missing = [k for k in schema if k not in keys]
    if missing:  # a programming error: the SQL and its declared schema disagree
        raise KeyError(f"query did not return columns {missing}")
    index = {k: keys.index(k) for k in schema}
    columns = {k: [r[i] for r in rows] for k, i in index.items()}
    return pl.DataFrame(columns, schema=dict(schema), strict=False)


UTC_TS = pl.Datetime("us", "UTC")
