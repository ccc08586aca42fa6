"""service-actors: OpenStack-style host agents (Service, Managers, Drivers) on actors."""

from actors.actor import BaseActor
from actors.config import BackendConfig, ServiceConfig, load_config
from actors.drivers.base import DriverActor, DriverOptions, operation
from actors.drivers.fake import FakeController, FakeDriver
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
from actors.loading import load_object
from actors.manager_actor import ManagerActor
from actors.metrics import MetricsServer, ServiceCollector, serve_metrics
from actors.periodic import periodic_task
from actors.processutils import ProcessResult, execute
from actors.rpc import rpc
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
