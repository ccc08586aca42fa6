"""Drivers: the host-level half of a backend."""

from actors.drivers.base import DriverActor, DriverOptions, Operation, operation
from actors.processutils import ProcessResult, execute

__all__ = ["DriverActor", "DriverOptions", "Operation", "ProcessResult", "execute", "operation"]
