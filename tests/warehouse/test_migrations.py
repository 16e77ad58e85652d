from sqlalchemy import inspect

from warehouse.migrate import downgrade, upgrade
from warehouse.schema import metadata


def test_blank_database_upgrades_to_head_with_every_table(pg_cluster):
    pg_cluster.ensure_database("blank_migrate")
    url = pg_cluster.url("blank_migrate")
    upgrade(url)
    from warehouse.db import make_engine

    eng = make_engine(url)
    try:
        names = set(inspect(eng).get_table_names())
        assert set(metadata.tables) <= names
        downgrade(url, "base")
        assert set(inspect(eng).get_table_names()) <= {"alembic_version"}
        upgrade(url)
        assert set(metadata.tables) <= set(inspect(eng).get_table_names())
    finally:
        eng.dispose()


def test_models_and_migrations_do_not_drift(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from warehouse.db import make_engine

    eng = make_engine(db_url)
    try:
        with eng.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
    finally:
        eng.dispose()
