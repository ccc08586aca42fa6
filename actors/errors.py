"""One exception hierarchy for service-actors.

Every error is a distinct type that carries the data explaining it (which
target, which deadline, which key) rather than a bare string, and says whether
retrying the same request later can succeed (`retryable`). `to_dict()` gives the
"errors as data" form used on the wire: type, message, details, retryable.
"""

from __future__ import annotations

from transport.errors import RemoteError as _TransportRemoteError
from transport.errors import RequestTimeout, TransportError, register_error

__all__ = [
    "ActorCrashed",
    "ActorStopped",
    "ActorUnavailable",
    "ActorsError",
    "Busy",
    "ConfigError",
    "DeadlineExceeded",
    "DriverNotReady",
    "EscalationError",
    "FatalError",
    "HostFenced",
    "InvalidArguments",
    "LoadError",
    "MethodNotAllowed",
    "NotFound",
    "OperationInProgress",
    "OperationInterrupted",
    "Overloaded",
    "ProcessExecutionError",
    "ProcessTimeout",
    "RemoteError",
    "StateDirInUse",
    "UnsupportedVersion",
]


class ActorsError(TransportError):
    """Root of every error raised by the actor layer.

    It derives from `transport.errors.TransportError`, the one root of the
    hierarchy, so errors carry the same data API in-process and on the wire:
    attributes from `details`, `retryable`, `to_dict()`.
    """


class NotFound(ActorsError):
    """No actor answers to this target name."""

    def __init__(self, target: str) -> None:
        super().__init__(f"no actor named {target!r}", target=target)


class MethodNotAllowed(ActorsError):
    """The method does not exist or is not RPC-exposed on the target."""

    def __init__(self, target: str, method: str) -> None:
        super().__init__(
            f"unknown method {method!r} on {target!r} (it exposes no RPC method of that name)",
            target=target,
            method=method,
        )


class InvalidArguments(ActorsError):
    """The arguments do not fit the method's signature or types."""

    def __init__(self, target: str, method: str, reason: str) -> None:
        super().__init__(
            f"bad arguments for {target}.{method}: {reason}",
            target=target,
            method=method,
            reason=reason,
        )


class UnsupportedVersion(ActorsError):
    """The requested RPC API version is not served (major differs or minor too high)."""

    def __init__(
        self, target: str, requested: str, supported: str, needs: str | None = None
    ) -> None:
        why = f" (the method needs {needs})" if needs else ""
        super().__init__(
            f"{target!r} serves RPC API {supported}, cannot serve {requested}{why}",
            target=target,
            requested=requested,
            supported=supported,
            needs=needs,
        )


class Busy(ActorsError):
    """The target's mailbox is full; retry later."""

    retryable = True

    def __init__(self, target: str, capacity: int) -> None:
        super().__init__(
            f"{target!r} is busy: mailbox full ({capacity} messages)",
            target=target,
            capacity=capacity,
        )


class Overloaded(Busy):
    """Too much blocking work (database I/O) is waiting for the service's workers.

    A `Busy` (catch either): the request was refused at once, before anything
    ran. Lane "client": `workers` reads run and `capacity` more wait. Lane
    "changes": `capacity` steps of changes under way run or wait, so a new
    change is not accepted. Retry later.
    """

    def __init__(self, lane: str, workers: int, capacity: int) -> None:
        what = (
            f"{capacity} steps of changes running or waiting"
            if lane == "changes"
            else f"{workers} workers busy and {capacity} calls waiting"
        )
        ActorsError.__init__(
            self,
            f"overloaded: {what} ({lane} lane); retry later",
            lane=lane,
            workers=workers,
            capacity=capacity,
        )


class DeadlineExceeded(ActorsError, RequestTimeout):
    """The request's deadline passed before it completed (in-process or remote)."""


class ActorUnavailable(ActorsError):
    """The actor exists but cannot take requests now (restarting, stopping)."""

    retryable = True

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"{target!r} is unavailable: {reason}", target=target, reason=reason)


class ActorCrashed(ActorUnavailable):
    """The actor crashed while this request was queued or running."""

    def __init__(self, target: str, reason: str) -> None:
        ActorsError.__init__(self, f"{target!r} crashed: {reason}", target=target, reason=reason)


class ActorStopped(ActorUnavailable):
    """The actor stopped before it handled this request."""

    def __init__(self, target: str, reason: str = "stopped") -> None:
        ActorsError.__init__(self, f"{target!r} stopped: {reason}", target=target, reason=reason)


class DriverNotReady(ActorUnavailable):
    """The backend's driver has not finished setup; carries the last setup error."""

    def __init__(self, target: str, reason: str) -> None:
        ActorsError.__init__(
            self, f"driver of {target!r} is not ready: {reason}", target=target, reason=reason
        )


class OperationInterrupted(ActorsError):
    """A journaled operation was cut short (crash, stop) and will not be re-run.

    Whether its effects happened is unknown: the method is not declared
    idempotent, so it was not run again. Retrying needs a new idempotency key.
    """

    def __init__(self, op_id: str, target: str, method: str, reason: str) -> None:
        super().__init__(
            f"operation {op_id} ({target}.{method}) was interrupted: {reason}",
            op_id=op_id,
            target=target,
            method=method,
            reason=reason,
        )


class OperationInProgress(ActorsError):
    """A retry found its idempotency key on an operation that is still running."""

    retryable = True

    def __init__(self, op_id: str, target: str, method: str) -> None:
        super().__init__(
            f"operation {op_id} ({target}.{method}) is still running; ask again later",
            op_id=op_id,
            target=target,
            method=method,
        )


class HostFenced(ActorsError):
    """This host did not start an operation another host may take over: its own
    registry heartbeat is too old for it to be sure the others still see it up.

    Nothing ran. Retry: another host of the topic answers, and takes the
    operation over once this host is declared down (protocol §6).
    """

    retryable = True

    def __init__(self, host: str, stale: float, limit: float) -> None:
        super().__init__(
            f"host {host!r} has not reached the registry for {stale:.0f}s (over {limit:.0f}s):"
            " it starts no operation another host may take over",
            host=host,
            stale=round(stale, 1),
            limit=limit,
        )


class EscalationError(ActorsError):
    """A supervisor gave up: its children restarted too often."""

    def __init__(self, supervisor: str, child: str, restarts: int, within: float) -> None:
        super().__init__(
            f"{supervisor!r} gave up on {child!r}: {restarts} restarts within {within:g}s",
            supervisor=supervisor,
            child=child,
            restarts=restarts,
            within=within,
        )


class FatalError(ActorsError):
    """Raise from a handler to crash the actor so that its supervisor restarts it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, reason=reason)


class RemoteError(ActorsError, _TransportRemoteError):
    """An error whose type is not on the allowlist, carried as data."""

    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        ActorsError.__init__(
            self,
            f"{type_name}: {message}",
            type_name=type_name,
            remote_message=message,
            traceback=traceback,
        )


class ConfigError(ActorsError):
    """The configuration is invalid: which file, which key, why."""

    def __init__(self, reason: str, *, file: str | None = None, key: str | None = None) -> None:
        where = ":".join(part for part in (file, key) if part)
        super().__init__(
            f"{where}: {reason}" if where else reason, file=file, key=key, reason=reason
        )


class StateDirInUse(ActorsError):
    """Another service or driver holds this lock file (a state directory, a driver's root)."""

    def __init__(self, path: str, pid: int | None) -> None:
        holder = f"process {pid}" if pid else "another process"
        super().__init__(f"{path} is held by {holder}", path=path, pid=pid)


class LoadError(ActorsError):
    """An import path in the configuration could not be loaded."""

    def __init__(self, path: str, kind: str, reason: str) -> None:
        super().__init__(f"cannot load {path!r}: {reason}", path=path, kind=kind, reason=reason)


class ProcessExecutionError(ActorsError):
    """A host command exited with an unexpected status."""

    def __init__(self, cmd: list[str], exit_code: int, stdout: str, stderr: str) -> None:
        tail = stderr.strip().splitlines()[-1:] if stderr.strip() else []
        super().__init__(
            f"command {cmd[0]!r} exited with {exit_code}" + (f": {tail[0]}" if tail else ""),
            cmd=list(cmd),
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
        )


class ProcessTimeout(ProcessExecutionError):
    """A host command did not finish within its timeout and was killed."""

    retryable = True

    def __init__(self, cmd: list[str], timeout: float, stdout: str = "", stderr: str = "") -> None:
        ActorsError.__init__(
            self,
            f"command {cmd[0]!r} timed out after {timeout:g}s and was killed",
            cmd=list(cmd),
            timeout=timeout,
            exit_code=-9,
            stdout=stdout,
            stderr=stderr,
        )


# The allowlist of types a client rebuilds from the wire.
register_error(
    NotFound,
    MethodNotAllowed,
    InvalidArguments,
    UnsupportedVersion,
    Busy,
    Overloaded,
    DeadlineExceeded,
    ActorUnavailable,
    ActorCrashed,
    ActorStopped,
    DriverNotReady,
    EscalationError,
    HostFenced,
    OperationInProgress,
    OperationInterrupted,
    RemoteError,
    ProcessExecutionError,
    ProcessTimeout,
)
