"""The one interface between the transport and whatever serves requests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Dispatcher", "ReplyFuture", "Request"]


@dataclass(slots=True)
class Request:
    """A decoded request, independent of the wire format.

    Read-only by convention (a frozen dataclass costs a microsecond more to
    build, once per request).
    """

    target: str
    method: str
    args: dict[str, Any] = field(default_factory=dict)
    timeout: float = 60.0
    version: str | None = None
    key: str | None = None
    cast: bool = False
    peer: str = ""
    scope: str | None = None  # where `key` is one operation; None: the target


class ReplyFuture(Protocol):
    """Completes once with a value or an exception."""

    def add_done_callback(self, callback: Callable[[Any], None]) -> None: ...

    def exception(self) -> BaseException | None: ...

    def value(self) -> Any: ...


class Dispatcher(Protocol):
    """Takes a request in, gives a reply future out; never blocks.

    For a cast the future completes (with None) once the request is accepted,
    or with an error if it was refused (busy, unknown target).
    """

    def dispatch(self, request: Request) -> ReplyFuture: ...

    def info(self) -> dict[str, Any]: ...
