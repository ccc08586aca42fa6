"""Messages that travel through actor mailboxes.

`Request` (defined with the futures, since it is one) and `Cast` are user
messages and count against the mailbox bound (`system = False`). Everything
else is a system message: it completes work that was already accepted, so it
is never refused for lack of room.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors.runtime import ActorFuture
from actors.runtime import Request as Request

# A Request is the call and its reply future in one object; each runtime has its
# own subclass (`runtime.request`). Re-exported here with the other messages.


class Cast:
    """Call `method` with no reply."""

    __slots__ = ("args", "kwargs", "method", "rpc", "version")
    system = False

    def __init__(
        self,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        rpc: bool,
        version: str | None,
    ) -> None:
        self.method, self.args, self.kwargs, self.rpc, self.version = (
            method,
            args,
            kwargs,
            rpc,
            version,
        )


class Continuation:
    """Run `fn(source)` in the actor's mailbox and complete `result` with its value.

    `deadline`: that of the request (or continuation) being handled when the
    continuation was made; the driver steps it queues inherit it (§5).
    """

    __slots__ = ("deadline", "fn", "result", "source")
    system = True

    def __init__(
        self,
        fn: Callable[[ActorFuture[Any]], Any],
        source: ActorFuture[Any],
        result: ActorFuture[Any],
        deadline: float | None = None,
    ) -> None:
        self.fn, self.source, self.result, self.deadline = fn, source, result, deadline


class TimerFired:
    """A timer set by the actor fell due; run `fn` in the mailbox."""

    __slots__ = ("fn", "ref")
    system = True

    def __init__(self, fn: Callable[[], Any], ref: Any = None) -> None:
        self.fn = fn
        self.ref = ref  # the actor's handle on the timer: cancelled after this was queued?


class ChildExited:
    """A child actor's loop ended; `reason` is None for a normal stop."""

    __slots__ = ("cell", "name", "reason")
    system = True

    def __init__(self, name: str, cell: Any, reason: str | None) -> None:
        self.name, self.cell, self.reason = name, cell, reason


class StartChildren:
    """Backoff elapsed: start these children (in start order)."""

    __slots__ = ("names", "token")
    system = True

    def __init__(self, names: tuple[str, ...], token: int) -> None:
        self.names, self.token = names, token


class Stop:
    """Stop after the messages already queued; children stop first, by `deadline`."""

    __slots__ = ("deadline", "reason")
    system = True

    def __init__(self, reason: str = "stopped", deadline: float | None = None) -> None:
        self.reason, self.deadline = reason, deadline


class Crash:
    """Crash on purpose (fault injection and tests)."""

    __slots__ = ("reason",)
    system = True

    def __init__(self, reason: str) -> None:
        self.reason = reason
