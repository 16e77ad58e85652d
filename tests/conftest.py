"""Suite-wide fixtures: a real Postgres cluster started by the suite, migrated with Alembic."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from warehouse.cluster import EmbeddedCluster
from warehouse.db import make_engine
from warehouse.migrate import upgrade
from warehouse.schema import metadata

pytest_plugins = ("tests.support.scenario_report",)  # target_kind fixture; real/simulator counts in header+summary

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.pop("PREFECT_API_URL", None)
# commands run by the tests never find a cockpit the developer runs (`boocontrol up` writes its pointer here)
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="boocontrol-test-state-")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[EmbeddedCluster]:
    base = Path(tempfile.mkdtemp(prefix="boocontrol-test-pg-"))
    cluster = EmbeddedCluster(base, free_port(), fast_unsafe=True)
    cluster.start()
    yield cluster
    cluster.stop("immediate")


@pytest.fixture(scope="session")
def db_url(pg_cluster: EmbeddedCluster) -> str:
    url = pg_cluster.url("boocontrol_test")
    pg_cluster.ensure_database("boocontrol_test")
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def truncate_all(engine: Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture()
def db(engine: Engine) -> Iterator[Engine]:
    """A migrated, empty database for one test (every table truncated afterwards)."""
    truncate_all(engine)
    yield engine
    truncate_all(engine)


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One Prefect test harness (temporary API + database) for the whole session; request it in flow tests."""
    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
