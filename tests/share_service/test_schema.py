"""The share service's tables: its own migrations, and registries of the former layout.

Before the share service was a package of its own, the framework's migration
0003 created its tables and the framework's `alembic_version` said '0003'.
Such a registry must keep working, and keep its shares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from actors.registry import Registry
from actors.registry.api import MIGRATIONS_DIR
from share_service.store import ShareStore
from share_service.tables import MIGRATIONS, metadata


def _version(registry: Registry, table: str) -> list[str]:
    with registry.transaction(write=False) as conn:
        return list(conn.execute(text(f"SELECT version_num FROM {table}")).scalars())


def _framework_to(conn: Any, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["connection"] = conn
    command.upgrade(config, revision)


def test_the_share_tables_come_from_their_own_migrations(
    make_registry: Callable[..., Registry],
) -> None:
    registry = make_registry(upgrade=False)
    registry.add_migrations(MIGRATIONS)
    registry.add_migrations(MIGRATIONS)  # once is enough
    registry.upgrade()
    registry.upgrade()  # up to date: a no-op
    assert _version(registry, "alembic_version") == ["0004_key_scope"]
    assert _version(registry, MIGRATIONS.version_table) == ["s0001"]
    with registry.engine.connect() as conn:
        ours = set(metadata.tables)
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, _: kind != "table" or name in ours,
            },
        )
        assert compare_metadata(context, metadata) == []


def test_a_registry_of_the_former_layout_keeps_its_shares(
    make_registry: Callable[..., Registry],
) -> None:
    registry = make_registry(upgrade=False)
    with registry.transaction(write=True) as conn:  # as the framework's 0003 left it
        _framework_to(conn, "0002")
        metadata.create_all(conn)
        conn.execute(text("UPDATE alembic_version SET version_num = '0003'"))
    store = ShareStore(registry)
    store.create("s1", "h@local", 10, name="projects")
    store.add_snapshot("s1", "monday")

    # A framework-only upgrade (`actorsctl db upgrade --db URL`) leaves them alone.
    registry.upgrade()
    assert _version(registry, "alembic_version") == ["0004_key_scope"]
    assert store.get("s1")["name"] == "projects"

    # The share service's start adopts them: same rows, its own version table.
    registry.add_migrations(MIGRATIONS)
    registry.upgrade()
    registry.upgrade()
    assert _version(registry, "alembic_version") == ["0004_key_scope"]
    assert _version(registry, MIGRATIONS.version_table) == ["s0001"]
    share = store.get("s1")
    assert (share["name"], share["size_gb"]) == ("projects", 10)
    assert [s["id"] for s in share["snapshots"]] == ["monday"]
    store.create("s2", "h@local", 1)  # and goes on working
    assert [s["id"] for s in store.shares("h@local")] == ["s1", "s2"]


def test_a_framework_registry_has_no_share_tables(make_registry: Callable[..., Registry]) -> None:
    registry = make_registry()
    assert not {"shares", "share_snapshots"} & set(inspect(registry.engine).get_table_names())
