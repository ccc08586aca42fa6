"""Alembic environment of the share service's tables (see `actors.registry.schema`)."""

from __future__ import annotations

from actors.registry.schema import run_env
from share_service.tables import MIGRATIONS, metadata

run_env(metadata, MIGRATIONS.version_table)
