"""Managers that are not ManagerActors: a module, an object, a factory or a plain class.

`manager_class_for` wraps one in a `PlainManager`, a ManagerActor that exposes
to RPC exactly the methods the backend's `rpc_methods` lists, and nothing
else. The object is made in `init_host` (a class or factory is called with
the backend's `manager_options` as keyword arguments; a module or an object is
used as it is), its `driver` attribute is set to the driver's proxy (calls
return futures, as for any manager), and its `init_host()` and
`init_host_with_rpc()` run when it has them. Arguments are validated against
the methods' type hints, as for `@rpc` methods.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any, ClassVar

import pydantic

from actors._plain_driver import (
    PlainOptions,
    Wrapped,
    build,
    declared_return_type,
    form_of,
    plain_options,
)
from actors.errors import InvalidArguments, LoadError
from actors.manager_actor import ManagerActor
from actors.rpc import (
    RpcMethod,
    check_version,
    numbers_of,
    parse_version,
    refuse_loose_numbers,
    summarize,
)

__all__ = ["PlainManager", "manager_class_for"]


class PlainManager(ManagerActor):
    """A ManagerActor around a manager that is not one (see the module docstring)."""

    wraps: ClassVar[Wrapped]

    @classmethod
    def validate_options(
        cls, raw: dict[str, Any], *, key: str = "manager_options", file: str | None = None
    ) -> pydantic.BaseModel | None:
        return PlainOptions(values=plain_options(cls.wraps, raw, key=key, file=file))

    def init_host(self) -> None:
        values = plain_options(self.wraps, self.config.manager_options, key="manager_options")
        self.wrapped = build(self.wraps, values)
        missing = [
            name for name in self.rpc_methods if not callable(getattr(self.wrapped, name, None))
        ]
        if missing and self.wraps.form == "factory":
            raise TypeError(f"{self.wraps.path!r} made a manager without {', '.join(missing)}")
        self.wrapped.driver = self.driver
        hook = getattr(self.wrapped, "init_host", None)
        if callable(hook):
            hook()

    def init_host_with_rpc(self) -> None:
        hook = getattr(self.wrapped, "init_host_with_rpc", None)
        if callable(hook):
            hook()

    def resolve_call(self, method: str, *, rpc: bool, version: str | None) -> Callable[..., Any]:
        info = self.rpc_methods.get(method)
        if not rpc or info is None or info.builtin:
            return super().resolve_call(method, rpc=rpc, version=version)
        if version is not None:
            check_version(self.name, version, self.RPC_API_VERSION, since=info.since)
        bound = self._bound.get(method)
        if bound is None:
            bound = self._bound[method] = _validated(self.name, method, self.wrapped)
        return bound


def _validated(target: str, method: str, obj: Any) -> Callable[..., Any]:
    """`obj.method`, its arguments checked against its type hints first, as `@rpc`
    methods' are: no bool, string or bytes for a number, and the same messages."""
    fn = getattr(obj, method)
    try:
        checked = pydantic.validate_call(config={"arbitrary_types_allowed": True})(fn)
        numbers = numbers_of(typing.get_type_hints(fn))
    except Exception:  # nothing to validate against (a builtin): the call will tell
        return fn  # type: ignore[no-any-return]
    names = {getattr(fn, "__name__", ""), getattr(fn, "__qualname__", "")}

    def call(*args: Any, **kwargs: Any) -> Any:
        refuse_loose_numbers(target, method, numbers, kwargs)
        try:
            return checked(*args, **kwargs)
        except pydantic.ValidationError as exc:
            if exc.title not in names:
                raise
            raise InvalidArguments(target, method, summarize(exc)) from None

    return call


def manager_class_for(obj: Any, path: str, listed: list[str] | None) -> type[ManagerActor]:
    """The ManagerActor class that runs `obj` (loaded from `path`); LoadError if it cannot."""
    if isinstance(obj, type) and issubclass(obj, ManagerActor):
        if listed:
            raise LoadError(
                path,
                "wrong_kind",
                f"{obj.__name__} is a ManagerActor: it marks its RPC methods with @rpc,"
                " so rpc_methods must not be set",
            )
        return obj
    form = form_of(obj)
    what = f"{path!r} ({'an object' if form == 'object' else 'a ' + form})"
    if not listed:
        raise LoadError(
            path,
            "wrong_kind",
            f"{what} is not a ManagerActor subclass, and no rpc_methods are listed for it:"
            " nothing would be reachable",
        )
    bad = sorted(
        name
        for name in listed
        if name.startswith("_") or not name.isidentifier() or name in ManagerActor.rpc_methods
    )
    if bad:
        raise LoadError(
            path,
            "wrong_kind",
            f"rpc_methods lists {', '.join(bad)}: private names and the built-in"
            f" {', '.join(sorted(ManagerActor.rpc_methods))} cannot be listed",
        )
    source = obj
    if form == "factory":
        source = declared_return_type(obj)
    missing = (
        sorted(name for name in listed if not callable(getattr(source, name, None)))
        if source is not None
        else []
    )
    if missing:
        raise LoadError(path, "wrong_kind", f"{what} has no method {', '.join(missing)}")
    version = str(getattr(obj, "RPC_API_VERSION", "1.0"))
    try:
        since = (parse_version(version)[0], 0)
    except ValueError as exc:
        raise LoadError(path, "wrong_kind", f"its RPC_API_VERSION: {exc}") from None
    made: type[PlainManager] = type(
        str(getattr(obj, "__name__", None) or type(obj).__name__).rpartition(".")[2],
        (PlainManager,),
        {
            "wraps": Wrapped(obj, form, path),
            "RPC_API_VERSION": version,
            "__module__": PlainManager.__module__,
            "__doc__": f"The manager {path!r}, run as a ManagerActor.",
        },
    )
    methods = dict(made.rpc_methods)
    for name in listed:
        function = getattr(source, name, None) if source is not None else None
        methods[name] = RpcMethod(
            name,
            since,
            function if function is not None else _unknown,
            function if function is not None else _unknown,
            _signature(function),
        )
    made.rpc_methods = methods
    return made


def _unknown(*args: Any, **kwargs: Any) -> Any:
    """A method of a manager its factory makes: known once it is made."""


def _signature(function: Any) -> inspect.Signature:
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):
        return inspect.Signature()
