"""Alembic environment of the framework's registry tables (services, operations).

See `actors.registry.schema.run_env`: migrations run on the connection that
`Registry.upgrade()` passes in, in its transaction.
"""

from __future__ import annotations

from actors.registry.models import Base
from actors.registry.schema import FRAMEWORK_MIGRATIONS, run_env

run_env(Base.metadata, FRAMEWORK_MIGRATIONS.version_table)
