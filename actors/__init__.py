"""service-actors: OpenStack-style host agents (Service, Managers, Drivers) on actors."""

# Only the errors are imported eagerly: importing them registers the types
# that RPC errors are rebuilt as. Everything else loads on first use, so that
# `import actors` (and so actorsctl) does not pay for SQLAlchemy, Alembic and
# the runtimes when it needs none of them (issue #20).
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
    from actors.actor import BaseActor
    from actors.config import BackendConfig, ServiceConfig, load_config
    from actors.drivers.base import DriverActor, DriverOptions, operation
    from actors.drivers.fake import FakeController, FakeDriver
    from actors.loading import load_object
    from actors.manager_actor import ManagerActor
    from actors.metrics import MetricsServer, ServiceCollector, serve_metrics
    from actors.periodic import periodic_task
    from actors.processutils import ProcessResult, execute
    from actors.runtime import (
        ActorFuture,
        OffloadLane,
        Runtime,
        VirtualClock,
        check_admission,
        get_runtime,
    )
    from actors.service import Service
    from actors.service_actor import ServiceActor
    from actors.supervision import Backoff, ChildSpec, RestartType, Strategy, SupervisionPolicy
    from actors.system import ActorHandle, ActorSystem

_LAZY = {
    "BaseActor": "actors.actor",
    "BackendConfig": "actors.config",
    "ServiceConfig": "actors.config",
    "load_config": "actors.config",
    "DriverActor": "actors.drivers.base",
    "DriverOptions": "actors.drivers.base",
    "operation": "actors.drivers.base",
    "FakeController": "actors.drivers.fake",
    "FakeDriver": "actors.drivers.fake",
    "load_object": "actors.loading",
    "ManagerActor": "actors.manager_actor",
    "MetricsServer": "actors.metrics",
    "ServiceCollector": "actors.metrics",
    "serve_metrics": "actors.metrics",
    "periodic_task": "actors.periodic",
    "ProcessResult": "actors.processutils",
    "execute": "actors.processutils",
    "ActorFuture": "actors.runtime",
    "OffloadLane": "actors.runtime",
    "Runtime": "actors.runtime",
    "VirtualClock": "actors.runtime",
    "check_admission": "actors.runtime",
    "get_runtime": "actors.runtime",
    "Service": "actors.service",
    "ServiceActor": "actors.service_actor",
    "Backoff": "actors.supervision",
    "ChildSpec": "actors.supervision",
    "RestartType": "actors.supervision",
    "Strategy": "actors.supervision",
    "SupervisionPolicy": "actors.supervision",
    "ActorHandle": "actors.system",
    "ActorSystem": "actors.system",
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
    "ActorFuture",
    "ActorHandle",
    "ActorStopped",
    "ActorSystem",
    "ActorUnavailable",
    "ActorsError",
    "BackendConfig",
    "Backoff",
    "BaseActor",
    "Busy",
    "ChildSpec",
    "ConfigError",
    "DeadlineExceeded",
    "DriverActor",
    "DriverNotReady",
    "DriverOptions",
    "EscalationError",
    "FakeController",
    "FakeDriver",
    "FatalError",
    "InvalidArguments",
    "LoadError",
    "ManagerActor",
    "MethodNotAllowed",
    "MetricsServer",
    "NotFound",
    "OffloadLane",
    "OperationInProgress",
    "OperationInterrupted",
    "Overloaded",
    "ProcessExecutionError",
    "ProcessResult",
    "ProcessTimeout",
    "RemoteError",
    "RestartType",
    "Runtime",
    "Service",
    "ServiceActor",
    "ServiceCollector",
    "ServiceConfig",
    "StateDirInUse",
    "Strategy",
    "SupervisionPolicy",
    "UnsupportedVersion",
    "VirtualClock",
    "__version__",
    "check_admission",
    "execute",
    "get_runtime",
    "load_config",
    "load_object",
    "operation",
    "periodic_task",
    "rpc",
    "serve_metrics",
]
