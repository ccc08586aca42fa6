"""The configured backends, loaded and validated: what a ServiceActor is built from.

For each enabled backend, the manager and driver are loaded by import path
(a manager or driver that is not a ManagerActor or DriverActor is wrapped in
one: see actors/_plain_manager.py and actors/_plain_driver.py) and their
options validated, before any actor starts (and again before a
reload changes anything), so a mistake is reported with where it was made.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors._plain_driver import driver_class_for
from actors._plain_manager import manager_class_for
from actors.config import BackendConfig, ServiceConfig
from actors.drivers.base import DriverActor, DriverOptions, collect_operations
from actors.errors import LoadError
from actors.loading import load_object
from actors.manager_actor import ManagerActor

__all__ = ["BackendPlan", "check_driver_kind", "plan_backends"]


@dataclass(frozen=True)
class BackendPlan:
    """A backend whose classes loaded and whose options validated."""

    backend: str
    name: str
    manager_class: type[ManagerActor]
    driver_class: type[DriverActor]
    driver_options: DriverOptions
    config: BackendConfig


def _load_backend(bc: BackendConfig, where: str) -> tuple[type[ManagerActor], type[DriverActor]]:
    """The backend's manager and driver classes; a LoadError says where the path was set."""
    key = f"{where}.manager"
    try:
        manager_class = manager_class_for(load_object(bc.manager), bc.manager, bc.rpc_methods)
        key = f"{where}.driver"
        driver_class = driver_class_for(load_object(bc.driver), bc.driver, bc.driver_operations)
        check_driver_kind(manager_class, driver_class, bc)
    except LoadError as exc:
        exc.message = f"{key}: {exc.message}"
        exc.args = (exc.message,)
        raise
    return manager_class, driver_class


def plan_backends(config: ServiceConfig, *, file: str | None = None) -> list[BackendPlan]:
    """Load and validate every enabled backend; raise LoadError/ConfigError."""
    plans = []
    for backend in config.enabled_backends:
        bc = config.backends[backend]
        where = f"{file}: backends.{backend}" if file else f"backends.{backend}"
        manager_class, driver_class = _load_backend(bc, where)
        options = driver_class.validate_options(
            bc.options, key=f"backends.{backend}.options", file=file
        )
        manager_class.validate_options(
            bc.manager_options, key=f"backends.{backend}.manager_options", file=file
        )
        plans.append(
            BackendPlan(
                backend, config.manager_name(backend), manager_class, driver_class, options, bc
            )
        )
    return plans


def check_driver_kind(
    manager_class: type[ManagerActor], driver_class: type[DriverActor], config: BackendConfig
) -> None:
    """LoadError unless the driver serves every operation of the manager's `DRIVER_KIND`.

    A manager written against a driver kind's abstract base class (ShareManager
    against ShareDriver) names it; a driver implements it by subclassing it or
    by listing the same operations. A driver that stands in for any (FakeDriver)
    fits every kind.
    """
    kind = manager_class.DRIVER_KIND
    if kind is None or driver_class.stands_in:
        return
    missing = sorted(set(collect_operations(kind)) - set(driver_class.operations))
    if missing:
        raise LoadError(
            config.driver,
            "wrong_kind",
            f"{manager_class.__name__} drives a {kind.__name__}, and {driver_class.__name__}"
            f" lacks its operations {', '.join(missing)}",
        )
