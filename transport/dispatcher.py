"""The one interface between the transport and whatever serves requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Request:
    """A decoded request, independent of the wire format."""

    target: str
    method: str
    args: dict[str, Any] = field(default_factory=dict)
    timeout: float = 60.0
    version: str | None = None
    cast: bool = False


class ReplyFuture(Protocol):
    """Completes once with a value or an exception."""

    def add_done_callback(self, callback: Any) -> None: ...


class Dispatcher(Protocol):
    """Takes a request in, gives a reply future out; never blocks."""

    def dispatch(self, request: Request) -> ReplyFuture: ...
