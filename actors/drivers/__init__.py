"""Drivers: the host-level half of a backend, and their tools (`execute`, `LockFile`)."""

from actors._statelock import LockFile
from actors.drivers.base import DriverActor, DriverOptions, Operation, operation
from actors.processutils import ProcessResult, execute

__all__ = [
    "DriverActor",
    "DriverOptions",
    "LockFile",
    "Operation",
    "ProcessResult",
    "execute",
    "operation",
]
