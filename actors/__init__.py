"""service-actors: OpenStack-style host agents (Service, Managers, Drivers) on actors.

The top level holds what an application writes every day: its managers and
drivers, their decorators, the service and its configuration, and the errors.
The rest lives in named submodules:

- `actors.testing`: the pytest harness, fake drivers, `wait_until`, conformance suites;
- `actors.runtime`: runtimes, futures, clocks, offload lanes;
- `actors.supervision`, `actors.system`, `actors.actor`: supervision and the actor core;
- `actors.registry`: the service registry and the operation journal;
- `actors.client`, `actors.aio`: clients that find services through the registry;
- `actors.metrics`, `actors.processutils`, `actors.loading`.
"""

from actors.config import BackendConfig, ServiceConfig, load_config
from actors.drivers.base import DriverActor, DriverOptions, operation
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
from actors.manager_actor import ManagerActor
from actors.periodic import periodic_task
from actors.rpc import rpc
from actors.service import Service

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
