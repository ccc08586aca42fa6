"""service-actors: OpenStack-style host agents (Service, Managers, Drivers) on actors.

The top level holds what an application writes every day: its managers and
drivers, their decorators, the service and its configuration, and the errors.
The rest lives in named submodules:

- `actors.testing`: the pytest harness, fake drivers, `wait_until`, conformance suites;
- `actors.runtime`: runtimes, futures, clocks, offload lanes;
- `actors.supervision`, `actors.system`, `actors.actor`: supervision and the actor core;
- `actors.registry`: the service registry and the operation journal;
- `actors.client`, `actors.aio`: clients that find services through the registry;
- `actors.metrics`, `actors.processutils`, `actors.loading`, `actors.logs`.
"""

# Only the errors are imported eagerly: importing them registers the types
# that RPC errors are rebuilt as. The other names load on first use, so that
# `import actors` (and so actorsctl) does not pay for SQLAlchemy, Alembic and
# the runtimes when it needs none of them: BENCHMARKS.md, "actorsctl start-up".
from typing import TYPE_CHECKING, Any

from actors.errors import (
    ActorCrashed,
    ActorsError,
    ActorStopped,
    ActorUnavailable,
    Busy,
    ConfigError,
    DeadlineExceeded,
    DriverNotReady,
    EscalationError,
    FatalError,
    HostFenced,
    InvalidArguments,
    LoadError,
    MethodNotAllowed,
    NotFound,
    OperationInProgress,
    OperationInterrupted,
    Overloaded,
    ProcessExecutionError,
    ProcessTimeout,
    RemoteError,
    StateDirInUse,
    UnsupportedVersion,
)

# `rpc` is also the name of its module: once anything imports `actors.rpc`, that
# module would shadow a lazily loaded decorator here. So it is imported now.
from actors.rpc import rpc

if TYPE_CHECKING:
    from actors.config import BackendConfig, ServiceConfig, load_config
    from actors.drivers.base import DriverActor, DriverOptions, operation
    from actors.manager_actor import ManagerActor
    from actors.periodic import periodic_task
    from actors.service import Service

_LAZY = {
    "BackendConfig": "actors.config",
    "ServiceConfig": "actors.config",
    "load_config": "actors.config",
    "DriverActor": "actors.drivers.base",
    "DriverOptions": "actors.drivers.base",
    "operation": "actors.drivers.base",
    "ManagerActor": "actors.manager_actor",
    "periodic_task": "actors.periodic",
    "Service": "actors.service",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module the first time the name is used."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'actors' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "ActorCrashed",
    "ActorStopped",
    "ActorUnavailable",
    "ActorsError",
    "BackendConfig",
    "Busy",
    "ConfigError",
    "DeadlineExceeded",
    "DriverActor",
    "DriverNotReady",
    "DriverOptions",
    "EscalationError",
    "FatalError",
    "HostFenced",
    "InvalidArguments",
    "LoadError",
    "ManagerActor",
    "MethodNotAllowed",
    "NotFound",
    "OperationInProgress",
    "OperationInterrupted",
    "Overloaded",
    "ProcessExecutionError",
    "ProcessTimeout",
    "RemoteError",
    "Service",
    "ServiceConfig",
    "StateDirInUse",
    "UnsupportedVersion",
    "__version__",
    "load_config",
    "operation",
    "periodic_task",
    "rpc",
]
