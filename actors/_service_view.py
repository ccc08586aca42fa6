"""`ServiceView`: what the ServiceActor's collaborators use of it.

The collaborators (heartbeat, recovery, journal upkeep, capability rounds)
are plain objects owned by the ServiceActor that run in its mailbox: they
continue through its `pipe`, offload through its runtime, log through its
logger, and read its current configuration and backends (a reload replaces
them). They see it through this Protocol rather than the class, so that
their modules do not import actors.service_actor, which imports them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from actors._backends import BackendPlan
from actors.config import ServiceConfig
from actors.runtime import ActorFuture, Clock, Runtime
from actors.system import ActorHandle

__all__ = ["ServiceView"]


class ServiceView(Protocol):
    """The ServiceActor as its collaborators see it (call only from its mailbox)."""

    @property
    def config(self) -> ServiceConfig: ...

    @property
    def plans(self) -> list[BackendPlan]: ...

    @property
    def serving(self) -> bool: ...

    @property
    def runtime(self) -> Runtime: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]: ...

    def pipe(
        self, future: ActorFuture[Any], fn: Callable[[ActorFuture[Any]], Any]
    ) -> ActorFuture[Any]: ...

    def child(self, name: str) -> ActorHandle: ...

    def plan(self, name: str) -> BackendPlan: ...

    def ready_managers(self) -> list[str]: ...
