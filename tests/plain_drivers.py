"""Drivers and a manager that are not actors, loaded by import path like users' own.

This module itself is a driver (a module of functions: `work`, `do_setup`,
`check_for_setup_error`, `get_stats`); `Journal` is a plain class whose
`@operation` methods list its operations; `journal` is an object of it;
`make_journal` is a factory that says it returns one; `Greeter` is a plain
manager class.
"""

from __future__ import annotations

import threading
from typing import Any

from actors.drivers import operation

# -- the module's own state, as a module driver keeps it ------------------------------------
STATE: dict[str, Any] = {}
_lock = threading.Lock()


def reset() -> None:
    """Fresh state for a test."""
    STATE.clear()
    STATE.update(calls=[], setups=0, in_flight=0, max_in_flight=0, broken=None)


reset()


def do_setup() -> None:
    STATE["setups"] += 1


def check_for_setup_error() -> None:
    if STATE["broken"]:
        raise RuntimeError(STATE["broken"])


def get_stats() -> dict[str, Any]:
    return {"calls": len(STATE["calls"])}


def work(n: int) -> int:
    """The module's one operation (listed by the backend's driver_operations)."""
    return _work(STATE, n)


def _work(state: dict[str, Any], n: int) -> int:
    with _lock:
        state["in_flight"] += 1
        state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
    try:
        state["calls"].append(n)
        total = sum(range(n * 1000))  # a little real work while others would queue
        return total - total + n * 2
    finally:
        with _lock:
            state["in_flight"] -= 1


def not_an_operation() -> str:
    return "never reachable"


# -- a plain class, an object of it, a factory --------------------------------------------
class Journal:
    """A plain driver class: its operations are its @operation methods."""

    made: list[Journal] = []  # every instance, across restarts

    def __init__(self, prefix: str = "j") -> None:
        self.prefix = prefix
        self.state: dict[str, Any] = {}
        self.setups = 0
        Journal.made.append(self)
        self.reset()

    def reset(self) -> None:
        self.state.clear()
        self.state.update(calls=[], in_flight=0, max_in_flight=0)

    def do_setup(self) -> None:
        self.setups += 1

    @operation
    def work(self, n: int) -> int:
        return _work(self.state, n)

    @operation(idempotent=True)
    def label(self, n: int) -> str:
        return f"{self.prefix}-{n}"

    def helper(self) -> str:
        """Public, but no operation: never reachable."""
        return "secret"


journal = Journal("object")


def make_journal(prefix: str = "made") -> Journal:
    """A factory: its return annotation lists the operations."""
    return Journal(prefix)


def make_anything(prefix: str = "any") -> Any:
    """A factory that does not say what it makes: driver_operations must list them."""
    return Journal(prefix)


# -- a plain manager ---------------------------------------------------------------------
class Greeter:
    """A manager that is not a ManagerActor; `rpc_methods` lists what is exposed."""

    RPC_API_VERSION = "1.0"

    def __init__(self, greeting: str = "hello") -> None:
        self.greeting = greeting
        self.driver: Any = None  # set by the framework: the driver's proxy
        self.started = False

    def init_host(self) -> None:
        self.started = True

    def greet(self, name: str) -> str:
        return f"{self.greeting}, {name}"

    def work(self, n: int) -> Any:
        return self.driver.work(n)  # a future: the reply follows when the driver is done

    def secret(self) -> str:
        return "not listed, never reachable"


greeter = Greeter("hey")  # a plain object as a manager: used as it is, no options
