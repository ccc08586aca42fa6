"""RPC exposure: the explicit allowlist of what a request may reach.

`@rpc` marks a manager method as reachable from the wire, with the API version
that introduced it. Nothing else is reachable: no `getattr` on a name that came
off the network. Arguments are validated against the method's type hints
(pydantic), so a wrong type is a clear `InvalidArguments`, not a TypeError deep
in business code.

Versions are "MAJOR.MINOR". A request for version V is served when V's major
equals the server's and V's minor is not above the server's.
"""

from __future__ import annotations

import copy
import functools
import inspect
import re
import types
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

import pydantic

from actors.errors import InvalidArguments, UnsupportedVersion

__all__ = ["RpcMethod", "check_version", "collect_rpc_methods", "parse_version", "rpc"]

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__actors_rpc__"


@dataclass(frozen=True)
class RpcMethod:
    """One exposed method: its name, the version it appeared in, its validator."""

    name: str
    since: tuple[int, int]
    function: Callable[..., Any]
    validated: Callable[..., Any]
    signature: inspect.Signature
    builtin: bool = False
    journal: bool = False
    idempotent: bool = False

    # check_arguments()'s checker, built at the first check (not part of the method's identity).
    _checker: Callable[..., None] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def check_arguments(self, target: str, args: dict[str, Any]) -> None:
        """Raise InvalidArguments if `args` would be refused, without running anything.

        For journaled methods: a request the method would refuse is answered
        at once instead of being recorded as a failed operation. What this
        cannot model (a signature pydantic cannot build) is left to the call.
        It is on the path of every journaled request: arguments of exactly
        their annotated builtin types pass the same fast check as the call
        (one type test per parameter); the rest go through pydantic.
        """
        checker = self._checker
        if checker is None:
            checker = _argument_checker(self)
            object.__setattr__(self, "_checker", checker)  # frozen: a cache, set once
        checker(target, args)

    def describe(self) -> dict[str, Any]:
        params = [p for p in self.signature.parameters.values() if p.name != "self"]
        hints = _hints(self) or {}
        return {
            "name": self.name,
            "since": f"{self.since[0]}.{self.since[1]}",
            "params": [p.name for p in params],
            "parameters": [_describe_param(p, hints.get(p.name)) for p in params],
            "journal": self.journal,
            "idempotent": self.idempotent,
            "doc": (inspect.getdoc(self.function) or "").split("\n")[0],
        }


@functools.cache
def _arguments_model(method: RpcMethod) -> type[pydantic.BaseModel] | None:
    """A model of the method's keyword arguments (None when it cannot be built)."""
    if method.validated is method.function:  # @rpc(validate=False)
        return None
    hints = _hints(method, extras=True)
    if hints is None:
        return None
    fields: dict[str, Any] = {}
    for name, param in method.signature.parameters.items():
        if name == "self":
            continue
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            return None  # *args, **kwargs: left to the call
        default = ... if param.default is param.empty else param.default
        fields[name] = (hints.get(name, Any), default)
    config = pydantic.ConfigDict(
        extra="forbid", arbitrary_types_allowed=True, protected_namespaces=()
    )
    try:
        with warnings.catch_warnings():  # a parameter named like a BaseModel attribute
            warnings.simplefilter("ignore")
            return pydantic.create_model(  # type: ignore[call-overload, no-any-return]
                f"{method.name}_arguments", __config__=config, **fields
            )
    except Exception:  # a hint pydantic cannot model
        return None


def _argument_checker(method: RpcMethod) -> Callable[[str, dict[str, Any]], None]:
    """check_arguments' work for `method`, with its hints resolved once."""
    model = _arguments_model(method)
    if model is None:
        return _no_check
    numbers = numbers_of(_hints(method) or {})
    name = method.name

    def slow(target: str, args: dict[str, Any]) -> None:
        refuse_loose_numbers(target, name, numbers, args)
        try:
            model.model_validate(args)
        except pydantic.ValidationError as exc:
            raise InvalidArguments(target, name, summarize(exc)) from None

    full_hints = _hints(method, extras=True)
    # The call's own fast path: exactly typed arguments are valid (nothing to run).
    fast = None if full_hints is None else _fast_caller(method, full_hints, _passed, _refused)
    if fast is None:
        return slow

    def check(target: str, args: dict[str, Any]) -> None:
        if fast(**args) is _REFUSED:
            slow(target, args)

    return check


def _no_check(target: str, args: dict[str, Any]) -> None:
    return None


def _passed(**kwargs: Any) -> None:
    return None


_REFUSED: Any = object()  # the fast check's "not exactly typed": pydantic decides


def _refused(*args: Any, **kwargs: Any) -> Any:
    return _REFUSED


def _describe_param(param: inspect.Parameter, hint: Any) -> dict[str, Any]:
    """A parameter as data: name, type (as written in Python), required, default."""
    described: dict[str, Any] = {
        "name": param.name,
        "type": _type_name(hint),
        "required": param.default is param.empty,
    }
    if param.default is not param.empty:
        default = param.default
        described["default"] = (
            default
            if isinstance(default, str | int | float | bool)
            else (None if default is None else repr(default))
        )
    return described


def _type_name(hint: Any) -> str:
    if hint is None:
        return "Any"
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "")


_VERSION = re.compile(r"([0-9]{1,6})\.([0-9]{1,6})", re.ASCII)


def parse_version(text: str) -> tuple[int, int]:
    """Parse "MAJOR.MINOR" into a tuple; ValueError on anything else."""
    match = _VERSION.fullmatch(str(text))
    if match is None:
        raise ValueError(f"RPC version must look like 'MAJOR.MINOR', got {str(text)[:40]!r}")
    return int(match[1]), int(match[2])


def check_version(
    target: str, requested: str | None, served: str, *, since: tuple[int, int] | None = None
) -> None:
    """Raise UnsupportedVersion unless `requested` can be served by `served`.

    With `since` (the version a method appeared in), a client that asks for
    an older version cannot call the method either: it does not exist there.
    """
    if requested is None:
        return
    try:
        want = parse_version(requested)
    except ValueError:
        raise UnsupportedVersion(target, str(requested), served) from None
    have = parse_version(served)
    if want[0] != have[0] or want[1] > have[1]:
        raise UnsupportedVersion(target, requested, served)
    if since is not None and want < since:
        raise UnsupportedVersion(target, requested, served, needs=f"{since[0]}.{since[1]}")


@overload
def rpc(fn: F, /) -> F: ...
@overload
def rpc(
    *,
    version: str = "1.0",
    validate: bool = True,
    builtin: bool = False,
    journal: bool = False,
    idempotent: bool = False,
) -> Callable[[F], F]: ...


def rpc(
    fn: F | None = None,
    /,
    *,
    version: str = "1.0",
    validate: bool = True,
    builtin: bool = False,
    journal: bool = False,
    idempotent: bool = False,
) -> F | Callable[[F], F]:
    """Expose a manager method to requests, as of RPC API `version`.

    `journal=True` makes every request to it a durable operation: committed to
    the service's operation journal before it is acknowledged, with its outcome
    recorded, honouring idempotency keys. `idempotent=True` (implies journal)
    declares that running it twice is safe, so crash recovery re-runs it
    instead of marking it interrupted. `builtin` is for the framework's own
    methods, served under any API version.
    """
    since = parse_version(version)
    journal = journal or idempotent

    def mark(func: F) -> F:
        if func.__name__.startswith("_"):
            raise TypeError(f"@rpc cannot expose private method {func.__name__!r}")
        validated = (
            pydantic.validate_call(config={"arbitrary_types_allowed": True})(func)
            if validate
            else func
        )
        setattr(
            func,
            _MARK,
            RpcMethod(
                func.__name__,
                since,
                func,
                validated,
                inspect.signature(func),
                builtin,
                journal,
                idempotent,
            ),
        )
        return func

    return mark(fn) if fn is not None else mark


def collect_rpc_methods(cls: type, api_version: str) -> dict[str, RpcMethod]:
    """The allowlist of `cls`: every @rpc method along its MRO."""
    served = parse_version(api_version)
    methods: dict[str, RpcMethod] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            info = getattr(value, _MARK, None)
            if isinstance(info, RpcMethod):
                if (not info.builtin and info.since[0] != served[0]) or info.since[1] > served[1]:
                    raise TypeError(
                        f"{cls.__name__}.{name} is @rpc(version='{info.since[0]}.{info.since[1]}')"
                        f" but the class serves RPC API {api_version}"
                    )
                methods[name] = info
            elif name in methods:
                del methods[name]  # overridden without @rpc: no longer exposed
    return methods


_FAST_TYPES = (str, int, float, bool, bytes, dict, list)


def _hints(method: RpcMethod, *, extras: bool = False) -> dict[str, Any] | None:
    """The method's resolved type hints, or None if they cannot be resolved.

    With `extras`, `Annotated[...]` hints keep their metadata (constraints
    such as `Field(gt=0)`), which only pydantic checks.
    """
    try:
        return typing.get_type_hints(method.function, include_extras=extras)
    except Exception:
        return None


def _unhashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return True
    return False


_OMITTED: Any = object()  # a keyword the caller did not pass
_PYDANTIC: Any = object()  # an annotation only pydantic checks: never a value's exact type


def _fast_caller(
    method: RpcMethod,
    hints: dict[str, Any],
    function: Callable[..., Any],
    slow: Callable[..., Any],
) -> Callable[..., Any] | None:
    """A caller for the common case off the wire, made once per method; None if it cannot apply.

    When every keyword argument has exactly its annotated builtin type (`str`,
    `int`, ..., optionally `| None`, or no annotation at all), the call skips
    pydantic and goes straight to the method; anything else (positional
    arguments, unknown or missing keywords, another type, a richer annotation)
    takes `slow`, which coerces or explains. This is on the path of every
    request: one dict lookup and one `type(x) is T` per parameter.
    """
    # (name, the exact type its value must have or None for any, None
    # accepted too, required) for every parameter.
    params: list[tuple[str, Any, bool, bool]] = []
    containers: dict[str, type] = {}  # list and dict values are copied, as pydantic does
    fresh: dict[str, Any] = {}  # defaults that are not hashable: pydantic copies them per call
    for index, (name, param) in enumerate(method.signature.parameters.items()):
        if index == 0 and name == "self":
            continue
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            return None
        hint = hints.get(name, Any)
        kind, optional = _simple_type(hint)
        if hint is not Any and kind is None:
            kind, optional = _PYDANTIC, False
        if kind is list or kind is dict:
            containers[name] = kind
        required = param.default is param.empty
        if not required and _unhashable(param.default):
            fresh[name] = param.default
        params.append((name, None if hint is Any else kind, optional, required))
    checks = tuple(params)
    copies = bool(containers or fresh)  # known once: most methods copy nothing
    deepcopy = copy.deepcopy

    def call(*args: Any, **kwargs: Any) -> Any:
        if args:
            return slow(*args, **kwargs)
        given = 0
        for name, kind, optional, required in checks:
            value = kwargs.get(name, _OMITTED)
            if value is _OMITTED:
                if required:
                    return slow(**kwargs)
                continue
            given += 1
            if kind is not None and type(value) is not kind and (value is not None or not optional):
                return slow(**kwargs)
        if given != len(kwargs):  # a keyword the method does not take
            return slow(**kwargs)
        if copies:
            for name, kind in containers.items():
                value = kwargs.get(name)
                if value is not None:
                    kwargs[name] = kind(value)  # a copy: the caller's stays its own
            for name, default in fresh.items():
                if name not in kwargs:
                    kwargs[name] = deepcopy(default)
        return function(**kwargs)

    return call


def _simple_type(hint: Any) -> tuple[type | None, bool]:
    """(T, optional) for a hint `T` or `T | None` with T a builtin the fast path checks exactly."""
    if typing.get_origin(hint) is typing.Annotated:
        return None, False  # constraints: pydantic's to check
    if hint in _FAST_TYPES:
        return hint, False
    if _is_union(hint):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(options) == 1 and len(typing.get_args(hint)) == 2 and options[0] in _FAST_TYPES:
            return options[0], True
    return None, False


def refuse_loose_numbers(
    target: str, method: str, numbers: dict[str, type], args: dict[str, Any]
) -> None:
    """InvalidArguments for a bool, string or bytes given where `numbers` wants a number."""
    for arg, value in args.items():
        kind = numbers.get(arg)
        if kind is not None and isinstance(value, bool | str | bytes | bytearray):
            wanted = "an integer" if kind is int else "a number"
            raise InvalidArguments(
                target, method, f"{arg}: expected {wanted}, got {_A_TYPE.get(type(value), 'bytes')}"
            )


def numbers_of(hints: dict[str, Any]) -> dict[str, type]:
    """Parameters annotated `int` or `float` (optionally `| None`).

    pydantic's lax mode would take True for 1 and "1" (or b"1") for 1: for
    numbers off the wire, a bool, a string or bytes is a client's mistake,
    refused before it.
    """
    numbers: dict[str, type] = {}
    for name, hint in hints.items():
        options = set(typing.get_args(hint)) - {type(None)} if _is_union(hint) else {hint}
        if options and options <= {int, float}:
            numbers[name] = float if float in options else int
    return numbers


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def bind_validated(target: str, method: RpcMethod, instance: Any) -> Callable[..., Any]:
    """A callable that validates arguments, then calls the method on `instance`."""
    validated = method.validated
    function = method.function.__get__(instance)
    hints = _hints(method) if validated is not method.function else None
    numbers = numbers_of(hints) if hints is not None else {}

    def slow(*args: Any, **kwargs: Any) -> Any:
        refuse_loose_numbers(target, method.name, numbers, kwargs)
        if validated is method.function:
            try:
                method.signature.bind(instance, *args, **kwargs)
            except TypeError as exc:
                raise InvalidArguments(target, method.name, str(exc)) from None
        try:
            return validated(instance, *args, **kwargs)
        except pydantic.ValidationError as exc:
            if exc.title in (method.function.__name__, method.function.__qualname__):
                raise InvalidArguments(target, method.name, summarize(exc)) from None
            raise

    full_hints = _hints(method, extras=True) if hints is not None else None
    if full_hints is None:
        return slow
    return _fast_caller(method, full_hints, function, slow) or slow


_A_TYPE = {bool: "a boolean", str: "a string"}


def summarize(exc: pydantic.ValidationError) -> str:
    """pydantic's errors in this module's one style: `name: expected ..., got ...`."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ()))
        msg = str(err.get("msg", ""))
        if msg.startswith("Input should be "):  # "Input should be a valid integer, got ..."
            msg = msg.replace("a valid integer", "an integer").replace("a valid ", "a ")
            msg = "expected " + msg.removeprefix("Input should be ")
        elif msg == "Field required":
            msg = "required, missing"
        parts.append(f"{loc}: {msg[:1].lower()}{msg[1:]}")
    return "; ".join(parts)
