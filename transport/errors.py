"""The root of every error in service-actors, and the transport's own errors.

`TransportError` is the one base class: `actors.errors.ActorsError` derives
from it, so everything the framework raises is a `TransportError`. Errors are
data: a type name, a message, details and whether a retry can succeed. On the
client, remote errors are rebuilt only from an allowlist (`register_error`);
any other type arrives as `RemoteError` carrying the remote type name, message
and traceback text.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ConnectionClosed",
    "ConnectionLost",
    "MessageTooLarge",
    "ProtocolError",
    "RemoteError",
    "RequestTimeout",
    "TransportError",
    "error_from_wire",
    "register_error",
]


class TransportError(Exception):
    """Root of the hierarchy: a message, details as data, and `retryable`."""

    retryable: ClassVar[bool] = False

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def __getattr__(self, name: str) -> Any:
        details = self.__dict__.get("details")
        if details is not None and name in details:
            return details[name]
        raise AttributeError(name)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.details))

    def to_dict(self) -> dict[str, Any]:
        """The error as plain data: type, message, details, retryable."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "details": dict(self.details),
            "retryable": self.retryable,
        }

    @classmethod
    def from_wire(cls, message: str, details: dict[str, Any]) -> TransportError:
        """Rebuild from wire data without calling a subclass's __init__."""
        return _rebuild(cls, message, details)


def _rebuild(cls: type[TransportError], message: str, details: dict[str, Any]) -> TransportError:
    # Not through __init__'s keywords: details may hold any key ("message", "self").
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.message = message
    err.details = dict(details)
    return err


class ProtocolError(TransportError):
    """A frame or envelope broke the wire protocol."""

    def __init__(self, reason: str, **details: Any) -> None:
        super().__init__(f"protocol error: {reason}", reason=reason, **details)


class MessageTooLarge(ProtocolError):
    """A message exceeded the size limit."""

    def __init__(self, size: int, limit: int) -> None:
        TransportError.__init__(
            self, f"message of {size} bytes exceeds the {limit} byte limit", size=size, limit=limit
        )


class RequestTimeout(TransportError):
    """No reply arrived before the request's deadline."""

    retryable = True

    def __init__(self, target: str, method: str, timeout: float) -> None:
        super().__init__(
            f"{target}.{method} did not complete within {timeout:g}s",
            target=target,
            method=method,
            timeout=timeout,
        )


class ConnectionClosed(TransportError):
    """The client was closed while the request was in flight."""

    retryable = True

    def __init__(self, endpoint: str) -> None:
        super().__init__(f"connection to {endpoint} closed", endpoint=endpoint)


class ConnectionLost(TransportError):
    """The connection to the server dropped while the request was in flight.

    Known from the connection itself (the peer closed it, or ZMTP heartbeats
    went unanswered), so the caller learns at once rather than at its
    deadline. Retryable: whether the server ran the request is unknown, so
    repeat it only if it is safe to (an idempotency key, an idempotent method).
    """

    retryable = True

    def __init__(self, endpoint: str) -> None:
        super().__init__(
            f"connection to {endpoint} lost with the request in flight"
            " (it may or may not have run)",
            endpoint=endpoint,
        )


class AuthenticationFailed(TransportError):
    """The server refused this client's CURVE handshake (its key is not allowed).

    Also raised when the handshake fails on this side (the server's public key
    this client holds is not the server's). Requests that were waiting for the
    connection fail with it at once rather than at their deadline. Not
    retryable as such: the keys must be put right first.
    """

    def __init__(self, endpoint: str, status: int, reason: str | None = None) -> None:
        reason = reason or (
            f"{endpoint} refused this client's key (CURVE handshake, status {status}): "
            "is its public key in the server's client_keys_dir?"
        )
        super().__init__(reason, endpoint=endpoint, status=status)


class ServerDraining(TransportError):
    """The server is shutting down: it finishes what it has but takes nothing new."""

    retryable = True

    def __init__(self, endpoint: str) -> None:
        super().__init__(
            f"{endpoint} is shutting down and accepts no new requests", endpoint=endpoint
        )


class ServerOverloaded(TransportError):
    """The server holds as many request bytes as it takes (from this peer, or in all)."""

    retryable = True

    def __init__(self, endpoint: str, scope: str, limit: int) -> None:
        super().__init__(
            f"{endpoint} holds {scope} request bytes up to its limit ({limit}); retry later",
            endpoint=endpoint,
            scope=scope,
            limit=limit,
        )


class RemoteError(TransportError):
    """An error whose type is not on the client's allowlist, carried as data."""

    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        super().__init__(
            f"{type_name}: {message}",
            type_name=type_name,
            remote_message=message,
            traceback=traceback,
        )


_REGISTRY: dict[str, type[TransportError]] = {}


def register_error(*classes: type[TransportError]) -> None:
    """Allow these error types to be rebuilt from the wire by name."""
    for cls in classes:
        _REGISTRY[cls.__name__] = cls


def lookup_error(name: str) -> type[TransportError] | None:
    return _REGISTRY.get(name)


def error_from_wire(data: Any) -> TransportError:
    """Rebuild an error reply: an allowlisted type, else RemoteError."""
    if not isinstance(data, dict):
        return ProtocolError("error reply is not a map")
    type_name = str(data.get("type", "Error"))
    message = str(data.get("message", ""))
    details = data.get("details")
    details = details if isinstance(details, dict) else {}
    cls = _REGISTRY.get(type_name)
    if cls is not None:
        try:
            return cls.from_wire(message, {str(k): v for k, v in details.items()})
        except Exception:  # a from_wire of a user's type refused these details
            pass  # the caller still hears of it, as a RemoteError below
    remote = _REGISTRY.get("RemoteError", RemoteError)
    error = remote.from_wire(
        f"{type_name}: {message}",
        {
            "type_name": type_name,
            "remote_message": message,
            "details": {str(k): v for k, v in details.items()},
            "traceback": str(data.get("traceback", "")),
        },
    )
    error.retryable = bool(data.get("retryable", False))  # type: ignore[misc]
    return error


register_error(
    ProtocolError,
    MessageTooLarge,
    RequestTimeout,
    ConnectionClosed,
    ServerDraining,
    ServerOverloaded,
    RemoteError,
)
