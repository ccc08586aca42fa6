"""`ServiceActor`: one per process; starts, supervises and routes to managers.

It is built from a `ServiceConfig`: for each enabled backend it loads the
manager and driver classes by import path, validates the driver's options, and
starts a ManagerActor named `host@backend`. It supervises them with the
configured strategy. Routing is a table it owns (target name to manager name);
callers route through it without a hop through its mailbox, so the service is
never a bottleneck for requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.actor import BaseActor
from actors.config import BackendConfig, ServiceConfig
from actors.drivers.base import DriverActor, DriverOptions
from actors.errors import NotFound
from actors.loading import load_object
from actors.manager_actor import ManagerActor
from actors.supervision import ChildSpec, SupervisionPolicy

__all__ = ["BackendPlan", "ServiceActor", "plan_backends"]


@dataclass(frozen=True)
class BackendPlan:
    """A backend whose classes loaded and whose options validated."""

    backend: str
    name: str
    manager_class: type[ManagerActor]
    driver_class: type[DriverActor]
    driver_options: DriverOptions
    config: BackendConfig


def plan_backends(config: ServiceConfig, *, file: str | None = None) -> list[BackendPlan]:
    """Load and validate every enabled backend; raise LoadError/ConfigError."""
    plans = []
    for backend in config.enabled_backends:
        bc = config.backends[backend]
        manager_class = load_object(bc.manager, kind=ManagerActor)
        driver_class: type[DriverActor] = load_object(bc.driver, kind=DriverActor)  # type: ignore[type-abstract]
        options = driver_class.validate_options(
            bc.options, key=f"backends.{backend}.options", file=file
        )
        plans.append(
            BackendPlan(
                backend, config.manager_name(backend), manager_class, driver_class, options, bc
            )
        )
    return plans


class ServiceActor(BaseActor):
    """The front door of a process: supervises one ManagerActor per backend."""

    def __init__(self, config: ServiceConfig, plans: list[BackendPlan]) -> None:
        self.config = config
        self.plans = plans
        self.routes: dict[str, str] = {}
        for plan in plans:
            self.routes[plan.name] = plan.name
            self.routes[plan.backend] = plan.name

    def child_specs(self) -> list[ChildSpec]:
        return [
            ChildSpec(
                plan.name,
                _manager_factory(self.config, plan),
                mailbox_capacity=plan.config.mailbox_capacity,
            )
            for plan in self.plans
        ]

    def supervision_policy(self) -> SupervisionPolicy:
        return self.config.supervision

    def on_start(self) -> None:
        self.log.info(
            "service %s on %s started backends: %s",
            self.config.binary,
            self.config.host,
            ", ".join(p.backend for p in self.plans) or "none",
        )

    def route(self, target: str) -> str:
        """The manager name for `target` (`host@backend` or `backend`)."""
        name = self.routes.get(target)
        if name is None:
            raise NotFound(target)
        return name

    def managers(self) -> list[str]:
        return [plan.name for plan in self.plans]


def _manager_factory(config: ServiceConfig, plan: BackendPlan) -> Any:
    def make() -> ManagerActor:
        return plan.manager_class(
            host=config.host,
            backend=plan.backend,
            driver_class=plan.driver_class,
            driver_options=plan.driver_options,
            config=plan.config,
        )

    return make
