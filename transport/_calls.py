"""What every client of the protocol does the same way, whatever its I/O.

`RpcClient` (threads, gevent) and `AsyncRpcClient` (asyncio) share these: the
DEALER's socket options, the request's envelope, how a reply frame becomes a
value or an error, and the error a passed deadline raises. One copy, so the
two clients cannot drift apart on the wire.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import zmq

from transport.errors import (
    AuthenticationFailed,
    ConnectionLost,
    ProtocolError,
    RequestTimeout,
    TransportError,
    error_from_wire,
    lookup_error,
)
from transport.protocol import ACK, ERROR, PONG, REPLY, Envelope, Limits, decode
from transport.security import ClientSecurity

__all__ = [
    "WATCHED",
    "ConnectionNews",
    "configure_dealer",
    "connection_news",
    "open_clients",
    "read_reply",
    "reply_outcome",
    "timeout_error",
]

C = TypeVar("C")

WATCHED = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
)
"""The connection events a client acts on (its socket monitor's filter)."""


def configure_dealer(
    sock: Any,
    endpoint: str,
    *,
    limits: Limits,
    security: ClientSecurity | None,
    heartbeat: float,
    reconnect_interval: float,
    connect: bool = True,
) -> Any:
    """Set a client DEALER's options (docs/protocol.md §16) and connect it.

    IMMEDIATE: requests are only queued to a live connection. The socket is
    closed if anything fails. With `connect=False` the caller connects it,
    after it has set up a socket monitor: events that come before the
    monitor's own connection are lost, a first handshake among them.
    """
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.SNDHWM, 10_000)
        sock.setsockopt(zmq.RCVHWM, 10_000)
        sock.setsockopt(zmq.MAXMSGSIZE, limits.max_message_bytes + 4096)
        sock.setsockopt(zmq.RECONNECT_IVL, int(reconnect_interval * 1000))
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        ms = int(heartbeat * 1000)
        sock.setsockopt(zmq.HEARTBEAT_IVL, ms)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, ms * 3)
        if security is not None:
            security.apply(sock)
        if connect:
            sock.connect(endpoint)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


def read_reply(frames: list[bytes], limits: Limits, stats: Counter[str]) -> Envelope | None:
    """The envelope of one reply message, or None (counted in `stats`) if unreadable."""
    if len(frames) != 1:
        stats["bad_frames"] += 1
        return None
    try:
        return decode(frames[0], limits, lenient=True)
    except ProtocolError:
        stats["bad_replies"] += 1
        return None


def reply_outcome(envelope: Envelope) -> tuple[Any, BaseException | None]:
    """(value, error) that a reply envelope carries: a result, an ack's or pong's info,
    or the remote error rebuilt through the allowlist."""
    kind = envelope.kind
    if kind == REPLY:
        return envelope.result, None
    if kind == ERROR:
        return None, error_from_wire(envelope.error)
    if kind in (ACK, PONG):
        return envelope.info, None
    return None, ProtocolError(f"unexpected reply kind {kind!r}")


def timeout_error(target: str, method: str, timeout: float) -> TransportError:
    """What a caller whose deadline passed gets: DeadlineExceeded if `actors.errors`
    is loaded (it registers it), else RequestTimeout."""
    cls = lookup_error("DeadlineExceeded")
    if cls is not None:
        return cls.from_wire(
            f"{target}.{method} did not complete within {timeout:g}s",
            {"target": target, "method": method, "timeout": timeout},
        )
    return RequestTimeout(target, method, timeout)


def open_clients(
    endpoints: list[str], make: Callable[[str], C]
) -> tuple[dict[str, C], dict[str, BaseException | None]]:
    """A client per endpoint for a fanout, and the outcome of those that could not be made.

    An endpoint whose client cannot even be made (a malformed address) gets that
    error as its outcome; the others are still cast to.
    """
    clients: dict[str, C] = {}
    outcome: dict[str, BaseException | None] = {}
    for ep in endpoints:
        try:
            clients[ep] = make(ep)
        except Exception as exc:  # e.g. zmq's "Invalid argument" for a bad endpoint
            outcome[ep] = exc
    return clients, outcome


@dataclass(frozen=True, slots=True)
class ConnectionNews:
    """What one connection event means to a client."""

    connected: bool
    """The connection's state from now on."""
    error: TransportError | None = None
    """What every request in flight fails with at once, if anything."""
    refused: bool = False
    """The handshake failed: connect again (a new handshake) with the next request."""
    counted: str | None = None
    """The client's stats counter this event adds one to."""


def connection_news(
    event: Mapping[str, Any],
    endpoint: str,
    security: ClientSecurity | None,
    connected: bool | None,
) -> ConnectionNews | None:
    """Interpret a monitor event of a client's socket; None if it changes nothing.

    A handshake that succeeded makes the connection live; a live connection
    that drops fails what is in flight with ConnectionLost (retryable: whether
    it ran is unknown); a refused key, or a CURVE handshake this side gave up
    on before any succeeded, fails it with AuthenticationFailed. Either way
    never at the deadline. A CURVE handshake this side gave up on after one
    succeeded is a connection cut during it (libzmq cannot tell the two
    apart): the client connects again and what waits keeps waiting.
    """
    kind = event.get("event")
    if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
        return ConnectionNews(True)
    if kind == zmq.EVENT_DISCONNECTED:
        if not connected:  # never up, or its loss is known already
            return None
        return ConnectionNews(False, ConnectionLost(endpoint), counted="connections_lost")
    if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        error = AuthenticationFailed(endpoint, int(event.get("value") or 0))
    elif security is not None and connected is not None:
        # Our side gave up on a handshake with a server whose key worked before:
        # the connection dropped during it (a server restarting, a reset), which
        # libzmq reports the same way. Connect again; what waits keeps waiting.
        return ConnectionNews(False, refused=True, counted="handshakes_cut")
    elif security is not None:  # never connected: not the server we hold a key of
        error = AuthenticationFailed(
            endpoint,
            0,
            f"CURVE handshake with {endpoint} failed on this side: is the server"
            " public key this client holds the server's own?",
        )
    else:
        return None
    return ConnectionNews(False, error, refused=True, counted="auth_failures")
