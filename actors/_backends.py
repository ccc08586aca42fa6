"""The configured backends, loaded and validated: what a ServiceActor is built from.

For each enabled backend, the manager and driver classes are loaded by import
path and their options validated, before any actor starts (and again before a
reload changes anything), so a mistake is reported with where it was made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.config import BackendConfig, ServiceConfig
from actors.drivers.base import DriverActor, DriverOptions
from actors.errors import LoadError
from actors.loading import load_object
from actors.manager_actor import ManagerActor

__all__ = ["BackendPlan", "plan_backends"]


@dataclass(frozen=True)
class BackendPlan:
    """A backend whose classes loaded and whose options validated."""

    backend: str
    name: str
    manager_class: type[ManagerActor]
    driver_class: type[DriverActor]
    driver_options: DriverOptions
    config: BackendConfig


def _load(path: str, kind: type[Any], where: str) -> Any:
    """load_object, its LoadError saying where the path was configured."""
    try:
        return load_object(path, kind=kind)
    except LoadError as exc:
        exc.message = f"{where}: {exc.message}"
        exc.args = (exc.message,)
        raise


def plan_backends(config: ServiceConfig, *, file: str | None = None) -> list[BackendPlan]:
    """Load and validate every enabled backend; raise LoadError/ConfigError."""
    plans = []
    for backend in config.enabled_backends:
        bc = config.backends[backend]
        where = f"{file}: backends.{backend}" if file else f"backends.{backend}"
        manager_class = _load(bc.manager, ManagerActor, f"{where}.manager")
        driver_class: type[DriverActor] = _load(bc.driver, DriverActor, f"{where}.driver")  # type: ignore[type-abstract]
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
