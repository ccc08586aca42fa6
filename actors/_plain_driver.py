"""Drivers that are not DriverActors: a module, an object, a factory or a plain class.

As in manila's "Services, Managers and Drivers", the path a backend's `driver`
names may lead to anything that answers `getattr`. `driver_class_for` wraps it
in a `PlainDriver`, a DriverActor that serializes calls to its operations with
the same setup and readiness as any driver. Its operations are listed
explicitly, never found by scanning public attributes: the `@operation`
methods of the class it is (or of a base class it implements, such as a driver
kind's abstract base class), `@operation` functions of a module, the return
annotation of a factory, and the backend's `driver_operations`.

How each form becomes the driver of one incarnation (built in `do_setup`, so a
failing constructor is a setup error, retried like any):

- a module or an object is the driver itself, shared by every incarnation; it
  takes no options;
- a class or a factory is called with the backend's `options` as keyword
  arguments (validated by its `Options` pydantic model when it has one, else
  checked against its signature), once per incarnation.

`do_setup()`, `check_for_setup_error()` and `get_stats()` are called when the
driver has them (`get_stats` answers `{}` otherwise).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from actors.actor import BaseActor
from actors.config import validate_options
from actors.drivers.base import (
    DriverActor,
    DriverOptions,
    Operation,
    collect_operations,
    operation_info,
)
from actors.errors import ConfigError, DriverNotReady, LoadError, MethodNotAllowed

__all__ = [
    "PlainDriver",
    "PlainOptions",
    "Wrapped",
    "build",
    "declared_return_type",
    "driver_class_for",
    "form_of",
    "plain_options",
]

Form = Literal["module", "object", "factory", "class"]

_HOOKS = frozenset({"do_setup", "check_for_setup_error", "get_stats"})


@dataclass(frozen=True)
class Wrapped:
    """What a plain driver or manager class runs: the loaded object, its form, its path."""

    target: Any
    form: Form
    path: str


class PlainOptions(DriverOptions):
    """A plain driver's options, checked: the keyword arguments of its class or factory."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    values: dict[str, Any] = {}


class PlainDriver(DriverActor):
    """A DriverActor around a driver that is not one (see the module docstring)."""

    Options = PlainOptions
    options: PlainOptions
    wraps: ClassVar[Wrapped]

    def __init__(self, options: DriverOptions, *, host: str, backend: str) -> None:
        super().__init__(options, host=host, backend=backend)
        self.wrapped: Any = None  # this incarnation's driver, made by do_setup

    @classmethod
    def validate_options(
        cls, raw: dict[str, Any], *, key: str = "options", file: str | None = None
    ) -> DriverOptions:
        """Options for the class or factory; a module or an object takes none."""
        return PlainOptions(values=plain_options(cls.wraps, raw, key=key, file=file))

    # -- the contract, delegated --------------------------------------------------------
    def do_setup(self) -> None:
        if self.wrapped is None:
            self.wrapped = self._build()
        hook = getattr(self.wrapped, "do_setup", None)
        if callable(hook):
            hook()

    def check_for_setup_error(self) -> None:
        hook = getattr(self.wrapped, "check_for_setup_error", None)
        if callable(hook):
            hook()

    def get_stats(self) -> dict[str, Any]:
        hook = getattr(self.wrapped, "get_stats", None)
        return dict(hook()) if callable(hook) else {}

    def _build(self) -> Any:
        """This incarnation's driver: the target itself, or what calling it made."""
        made = build(self.wraps, self.options.values)
        missing = _missing(made, self.operations)
        if missing:
            raise TypeError(
                f"{self.wraps.path!r} made {type(made).__name__!r}, which lacks the"
                f" operations {', '.join(missing)}"
            )
        return made

    # -- routing ------------------------------------------------------------------------
    def resolve_call(self, method: str, *, rpc: bool, version: str | None) -> Callable[..., Any]:
        if rpc or (method not in self.operations and method != "get_stats"):
            raise MethodNotAllowed(self.name, method)
        if not self.ready:
            raise DriverNotReady(self.name, self.last_setup_error or "setup has not finished")
        if method == "get_stats":
            return self.get_stats
        return getattr(self.wrapped, method)  # type: ignore[no-any-return]


def plain_options(
    wraps: Wrapped, raw: dict[str, Any], *, key: str, file: str | None = None
) -> dict[str, Any]:
    """The keyword arguments for a plain class or factory; a module or object takes none."""
    if wraps.form in ("module", "object"):
        if raw:
            raise ConfigError(
                f"{wraps.path!r} is {_a(wraps.form)}: it is used as it is and takes no"
                f" options (got {', '.join(sorted(raw))})",
                file=file,
                key=key,
            )
        return {}
    model = getattr(wraps.target, "Options", None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return dict(validate_options(model, raw, key=key, file=file))
    try:
        inspect.signature(wraps.target).bind(**raw)
    except TypeError as exc:
        raise ConfigError(
            f"{exc} (the keyword arguments of {wraps.path!r})", file=file, key=key
        ) from None
    except ValueError:  # no signature to check against (a builtin): the call will tell
        pass
    return dict(raw)


def build(wraps: Wrapped, values: dict[str, Any]) -> Any:
    """One incarnation's object: a module or object itself, else what calling it made."""
    if wraps.form in ("module", "object"):
        return wraps.target
    return wraps.target(**values)


def form_of(obj: Any) -> Form:
    """Which of the four forms `obj` takes as a driver or a manager."""
    if isinstance(obj, types.ModuleType):
        return "module"
    if isinstance(obj, type):
        return "class"
    if inspect.isroutine(obj) or isinstance(obj, partial):
        return "factory"
    return "object"


def declared_operations(obj: Any, form: Form) -> dict[str, Operation]:
    """The operations `obj` declares itself (marks, an ABC, a factory's return type)."""
    if form == "class":
        return collect_operations(obj)
    if form == "object":
        return collect_operations(type(obj))
    if form == "module":
        return {
            name: info
            for name, value in vars(obj).items()
            if (info := operation_info(value)) is not None and not name.startswith("_")
        }
    made = declared_return_type(obj)
    return collect_operations(made) if made is not None else {}


def declared_return_type(factory: Any) -> type | None:
    """The class a factory says it returns, if it says (`-> ShareDriver`)."""
    try:
        hint = typing.get_type_hints(factory).get("return")
    except Exception:  # unresolvable annotations: the configuration must list the operations
        return None
    return hint if isinstance(hint, type) else None


def _missing(obj: Any, operations: dict[str, Operation]) -> list[str]:
    return sorted(name for name in operations if not callable(getattr(obj, name, None)))


def _a(form: Form) -> str:
    return "an object" if form == "object" else f"a {form}"


def driver_class_for(obj: Any, path: str, listed: list[str] | None) -> type[DriverActor]:
    """The DriverActor class that runs `obj` (loaded from `path`); LoadError if it cannot.

    A DriverActor subclass is its own; anything else is wrapped in a
    `PlainDriver` whose operations are what `obj` declares plus `listed` (a
    backend's `driver_operations`).
    """
    if isinstance(obj, type) and issubclass(obj, DriverActor):
        if listed:
            raise LoadError(
                path,
                "wrong_kind",
                f"{obj.__name__} is a DriverActor: it marks its operations with @operation,"
                " so driver_operations must not be set",
            )
        return obj
    form = form_of(obj)
    if form == "class" and issubclass(obj, BaseActor):
        raise LoadError(
            path,
            "wrong_kind",
            f"{obj.__name__} is an actor but not a DriverActor: a driver is a DriverActor"
            " subclass, or a module, object, factory or class with listed operations",
        )
    operations = dict(declared_operations(obj, form))
    for name in listed or []:
        operations.setdefault(name, Operation(name, idempotent=False))
    bad = sorted(name for name in operations if name.startswith("_") or name in _HOOKS)
    if bad:
        raise LoadError(
            path,
            "wrong_kind",
            f"{', '.join(bad)} cannot be operations (private names and the setup hooks"
            " do_setup, check_for_setup_error, get_stats are not)",
        )
    if not operations:
        raise LoadError(
            path,
            "wrong_kind",
            f"{_describe(obj, form)} lists no operations: implement a driver kind's abstract"
            " base class, mark methods with @operation, or list them in driver_operations",
        )
    if form == "class" and inspect.isabstract(obj):
        abstract = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
        raise LoadError(path, "wrong_kind", f"{obj.__name__} is abstract: implement {abstract}")
    if form != "factory":
        missing = _missing(obj, operations)
        if missing:
            raise LoadError(
                path,
                "wrong_kind",
                f"{_describe(obj, form)} has no callable {', '.join(missing)}"
                " (listed as operations)",
            )
    name = getattr(obj, "__name__", None) or type(obj).__name__
    made: type[PlainDriver] = type(
        str(name).rpartition(".")[2],
        (PlainDriver,),
        {
            "wraps": Wrapped(obj, form, path),
            "__module__": PlainDriver.__module__,
            "__doc__": f"The driver {path!r} ({_a(form)}), run as a DriverActor.",
        },
    )
    made.operations = operations  # after __init_subclass__, which found no marks of its own
    return made


def _describe(obj: Any, form: Form) -> str:
    if form == "module":
        return f"module {obj.__name__!r}"
    if form == "class":
        return f"class {obj.__name__!r}"
    if form == "factory":
        return f"factory {getattr(obj, '__qualname__', repr(obj))!r}"
    return f"object {obj!r} (of {type(obj).__name__})"
