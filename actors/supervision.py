"""Supervision: what a parent does when a child actor exits.

Pure decision logic, in the style of Erlang/OTP supervisors, driven by the
parent actor from its own mailbox:

- strategy: `one_for_one` restarts the child that exited; `one_for_all`
  restarts every child; `rest_for_one` restarts the child and every child
  started after it;
- restart type per child: `permanent` (always restarted), `transient`
  (restarted only after an abnormal exit), `temporary` (never restarted);
- intensity: more than `max_restarts` restarts within `within_seconds`
  escalates to the parent's own supervisor;
- backoff: exponential delay with jitter before each restart, so a child that
  keeps failing does not spin.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from actors.actor import BaseActor

__all__ = [
    "Backoff",
    "ChildSpec",
    "Decision",
    "RestartType",
    "Strategy",
    "SupervisionPolicy",
    "Supervisor",
]


class Strategy(enum.StrEnum):
    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class RestartType(enum.StrEnum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class Backoff(BaseModel):
    """Exponential backoff with jitter: initial * multiplier**attempt, capped."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    initial: float = Field(0.1, ge=0)
    maximum: float = Field(30.0, ge=0)
    multiplier: float = Field(2.0, ge=1)
    jitter: float = Field(0.2, ge=0, le=1)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before restart number `attempt` (0-based)."""
        base = min(self.maximum, self.initial * self.multiplier ** max(0, attempt))
        if self.jitter and base:
            spread = base * self.jitter
            base += (rng or random).uniform(-spread, spread)
        return max(0.0, min(self.maximum, base))


class SupervisionPolicy(BaseModel):
    """How a supervisor treats its children; part of the configuration."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: Strategy = Strategy.ONE_FOR_ONE
    max_restarts: int = Field(5, ge=0)
    within_seconds: float = Field(60.0, gt=0)
    backoff: Backoff = Backoff()
    shutdown_timeout: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> SupervisionPolicy:
        if self.backoff.maximum < self.backoff.initial:
            raise ValueError("backoff.maximum must not be below backoff.initial")
        return self


@dataclass(frozen=True)
class ChildSpec:
    """How to make a child actor: a stable name and a factory for its behaviour."""

    name: str
    factory: Callable[[], BaseActor]
    restart: RestartType = RestartType.PERMANENT
    shutdown_timeout: float | None = None
    mailbox_capacity: int | None = None


@dataclass(frozen=True)
class Decision:
    """What to do after a child exit."""

    restart: tuple[str, ...] = ()
    """Children to (re)start, in start order; siblings among them must be stopped first."""
    stop_siblings: tuple[str, ...] = ()
    """Running siblings to stop before the restart, in stop (reverse start) order."""
    remove: tuple[str, ...] = ()
    """Children that are gone for good."""
    delay: float = 0.0
    escalate: bool = False
    restarts_in_window: int = 0


@dataclass
class Supervisor:
    """Decides restarts for an ordered set of children; no I/O, no actors."""

    policy: SupervisionPolicy
    rng: random.Random = field(default_factory=random.Random)
    children: list[ChildSpec] = field(default_factory=list)
    _restarts: deque[float] = field(default_factory=deque)

    def add(self, spec: ChildSpec) -> None:
        if any(c.name == spec.name for c in self.children):
            raise ValueError(f"duplicate child name {spec.name!r}")
        self.children.append(spec)

    def remove(self, name: str) -> None:
        self.children = [c for c in self.children if c.name != name]

    def spec(self, name: str) -> ChildSpec | None:
        return next((c for c in self.children if c.name == name), None)

    def names(self) -> list[str]:
        return [c.name for c in self.children]

    def restarts_within_window(self, now: float) -> int:
        self._trim(now)
        return len(self._restarts)

    def _trim(self, now: float) -> None:
        horizon = now - self.policy.within_seconds
        while self._restarts and self._restarts[0] <= horizon:
            self._restarts.popleft()

    def child_exited(self, name: str, *, abnormal: bool, now: float) -> Decision:
        """Decide what follows the exit of child `name` at time `now`."""
        spec = self.spec(name)
        if spec is None:
            return Decision()
        if spec.restart is RestartType.TEMPORARY or (
            spec.restart is RestartType.TRANSIENT and not abnormal
        ):
            self.remove(name)
            return Decision(remove=(name,))
        self._trim(now)
        self._restarts.append(now)
        count = len(self._restarts)
        if count > self.policy.max_restarts:
            return Decision(escalate=True, restarts_in_window=count)
        names = self.names()
        index = names.index(name)
        if self.policy.strategy is Strategy.ONE_FOR_ONE:
            group = [name]
        elif self.policy.strategy is Strategy.ONE_FOR_ALL:
            group = names
        else:
            group = names[index:]
        siblings = tuple(reversed([n for n in group if n != name]))
        # A temporary sibling is stopped with the group but never restarted (as in OTP).
        gone = tuple(n for n in siblings if self._restart_type(n) is RestartType.TEMPORARY)
        for sibling in gone:
            self.remove(sibling)
        delay = self.policy.backoff.delay(count - 1, self.rng)
        return Decision(
            restart=tuple(n for n in group if n not in gone),
            stop_siblings=siblings,
            remove=gone,
            delay=delay,
            restarts_in_window=count,
        )

    def _restart_type(self, name: str) -> RestartType | None:
        spec = self.spec(name)
        return spec.restart if spec is not None else None


def describe(decision: Decision) -> dict[str, Any]:
    """A decision as plain data, for logs and status dumps."""
    return {
        "restart": list(decision.restart),
        "stop_siblings": list(decision.stop_siblings),
        "remove": list(decision.remove),
        "delay": round(decision.delay, 3),
        "escalate": decision.escalate,
    }
