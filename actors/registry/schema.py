"""Alembic migrations of the registry database: the framework's, and applications'.

The framework's migrations create its own tables only (services, operations).
An application that keeps tables of its own in the registry database (the
share service does) ships its own Alembic script directory, recorded in a
version table of its own, and names it with a `Migrations` value:

    MIGRATIONS = Migrations(Path(__file__).parent / "migrations", "myapp_alembic_version")

    class MyManager(ManagerActor):
        MIGRATIONS = MIGRATIONS       # applied when a service hosting it starts

A service adds the `Migrations` of every manager class it hosts to its
registry (`Registry.add_migrations`), and `Registry.upgrade()` applies the
framework's first, then each application's, to its own head, in one
transaction. The application's `env.py` is two lines: `run_env(metadata,
MIGRATIONS.version_table)`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData, String, column, inspect, table, update

__all__ = ["FRAMEWORK_MIGRATIONS", "Migrations", "apply_migrations", "run_env"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migrations:
    """An Alembic script directory and the table recording how far it got.

    `version_table` must be the directory's own (two directories sharing one
    would each see the other's revision as unknown). `retired` lists
    revisions this directory once shipped and no longer does, each with the
    revision to record in its place: the framework's 0003 (the share
    service's tables, which moved to the share service's own migrations).
    """

    script_location: Path
    version_table: str
    retired: tuple[tuple[str, str], ...] = ()


FRAMEWORK_MIGRATIONS = Migrations(
    script_location=Path(__file__).resolve().parent / "migrations",
    version_table="alembic_version",
    # 0003 created the share service's tables in releases where the share service
    # was part of the framework. The tables stay where they are; the share
    # service's first migration adopts them.
    retired=(("0003", "0002"),),
)


def apply_migrations(conn: Connection, migrations: Iterable[Migrations]) -> None:
    """Upgrade each to its head, in order, on `conn` (inside the caller's transaction).

    Raises alembic's CommandError for a revision the scripts do not know.
    """
    for each in migrations:
        _retire(conn, each)
        config = Config()
        config.set_main_option("script_location", str(each.script_location).replace("%", "%%"))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def _retire(conn: Connection, migrations: Migrations) -> None:
    """Record, in place of a retired revision, the one its directory now ends with there."""
    if not migrations.retired or not inspect(conn).has_table(migrations.version_table):
        return
    versions = table(migrations.version_table, column("version_num", String))
    for old, new in migrations.retired:
        moved = conn.execute(
            update(versions).where(versions.c.version_num == old).values(version_num=new)
        )
        if moved.rowcount:
            log.warning(
                "registry schema: revision %s of %s is retired; recorded as %s",
                old,
                migrations.script_location,
                new,
            )


def run_env(target_metadata: MetaData, version_table: str) -> None:
    """The body of a migrations directory's `env.py`.

    `Registry.upgrade()` runs Alembic with no alembic.ini and passes its own
    open connection (already inside a transaction) as
    `config.attributes["connection"]`, so migrations run on the registry's
    engine with its settings, in its transaction. For development (`alembic
    revision --autogenerate`), a `sqlalchemy.url` main option is used instead
    when no connection is given; `alembic upgrade --sql` emits SQL text.
    """
    from alembic import context  # only importable while Alembic runs an env.py
    from sqlalchemy import create_engine, pool

    config = context.config

    def run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=version_table,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    if context.is_offline_mode():
        context.configure(
            url=config.get_main_option("sqlalchemy.url"),
            target_metadata=target_metadata,
            version_table=version_table,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection in config.attributes and no sqlalchemy.url")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            run(conn)
    finally:
        engine.dispose()
