"""`RpcServer`: the ROUTER front door that feeds requests to a Dispatcher.

It decodes and validates every message, hands good requests to the dispatcher
and sends each reply when its future completes. Bad input never hurts it: every
malformed frame, envelope or request gets an error reply when a reply is
possible, is counted in `stats`, logged (rate-limited), and the server goes on
serving everyone else.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import traceback
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import zmq

from transport._io import Shape, SocketLoop, make_loop, running_under_gevent
from transport.dispatcher import Dispatcher, Request
from transport.errors import ProtocolError, ServerDraining, ServerOverloaded, TransportError
from transport.protocol import (
    ACK,
    CALL,
    CAST,
    DEFAULT_LIMITS,
    ERROR,
    PING,
    PONG,
    PROTOCOL_VERSION,
    REQUEST_KINDS,
    Envelope,
    Limits,
    decode,
    encode,
    encode_reply,
    error_body,
)
from transport.ratelimit import RateLimitedLog
from transport.security import ServerSecurity, ZapHandler

__all__ = ["BindError", "InsecureBind", "RpcServer", "is_loopback_endpoint"]

log = logging.getLogger("transport.server")


class BindError(TransportError):
    """The endpoint could not be bound (in use, bad address, no permission)."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"cannot bind {endpoint}: {reason}", endpoint=endpoint, reason=reason)


class InsecureBind(TransportError):
    """Refused to bind beyond loopback without CURVE."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(
            f"refusing to bind {endpoint} without CURVE encryption; configure keys or pass "
            "the explicit insecure flag",
            endpoint=endpoint,
        )


def is_loopback_endpoint(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on 127.0.0.0/8, ::1 or localhost."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = urlsplit(f"//{rest}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or '*': could be anything


class RpcServer:
    """Serve a Dispatcher on a ZeroMQ ROUTER socket (tcp, ipc or inproc)."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        endpoint: str,
        *,
        green: bool | None = None,
        limits: Limits = DEFAULT_LIMITS,
        security: ServerSecurity | None = None,
        allow_insecure: bool = False,
        heartbeat: float = 5.0,
        high_water_mark: int = 10_000,
        receive_high_water_mark: int = 100,
        max_peer_bytes: int = 32 << 20,
        max_held_bytes: int = 256 << 20,
    ) -> None:
        if security is None and not allow_insecure and not is_loopback_endpoint(endpoint):
            raise InsecureBind(endpoint)
        self.dispatcher = dispatcher
        self.requested_endpoint = endpoint
        self.endpoint = endpoint
        self.green = running_under_gevent() if green is None else green
        self.limits = limits
        self.security = security
        self.heartbeat = heartbeat
        self.high_water_mark = high_water_mark
        # Messages libzmq holds per client before it stops reading that client's
        # connection (TCP then holds the sender back; nothing is lost). Low, as a
        # message's size is bounded only per frame: this is what bounds the bytes.
        self.receive_high_water_mark = receive_high_water_mark
        self.max_peer_bytes, self.max_held_bytes = max_peer_bytes, max_held_bytes
        """Request bytes held (dispatched, not yet answered) per client and in all."""
        self.held_bytes = 0
        self._peer_bytes: dict[bytes, int] = {}
        self.stats: Counter[str] = Counter()
        self.draining = False
        self.in_flight = 0
        """Requests dispatched and not yet answered (calls until the reply, casts until the ack)."""
        self._count_lock = threading.Lock()
        self._log = RateLimitedLog(log)
        self._loop: SocketLoop | None = None
        self._zap: ZapHandler | None = None
        self._context: Any = None

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> RpcServer:
        """Bind and start serving; raises BindError if the endpoint is taken."""
        if self.green:
            from zmq import green as zmq_green

            self._context = zmq_green.Context()
        else:
            self._context = zmq.Context()
        # [identity, body] or [identity, b"", body]; larger messages are dropped as read.
        shape = Shape(max_frames=3, max_bytes=self.limits.max_message_bytes + 4096 + 256)
        self._loop = make_loop(
            self.green,
            self._make_socket,
            self._on_frames,
            "rpc-server",
            self._context,
            shape,
            self._on_oversized,
        )
        try:
            self._loop.start()
        except zmq.ZMQError as exc:
            self._loop = None
            if self._zap is not None:
                self._zap.stop()
                self._zap = None
            self._context.term()
            self._context = None
            raise BindError(self.requested_endpoint, exc.strerror) from None
        return self

    @property
    def context(self) -> Any:
        """The ZeroMQ context (clients of an inproc:// endpoint must share it)."""
        return self._context

    def _make_socket(self, context: Any) -> Any:
        if self.security is not None:
            self._zap = ZapHandler(context, self.security, green=self.green)
            self._zap.start()
        sock = context.socket(zmq.ROUTER)
        try:
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            sock.setsockopt(zmq.LINGER, 1000)
            sock.setsockopt(zmq.SNDHWM, self.high_water_mark)
            sock.setsockopt(zmq.RCVHWM, self.receive_high_water_mark)
            # Room for the envelope around a maximal body; ZeroMQ drops a peer
            # that sends more, before we ever see it.
            sock.setsockopt(zmq.MAXMSGSIZE, self.limits.max_message_bytes + 4096)
            ms = int(self.heartbeat * 1000)
            sock.setsockopt(zmq.HEARTBEAT_IVL, ms)
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, ms * 3)
            sock.setsockopt(zmq.HEARTBEAT_TTL, ms * 3)
            if self.security is not None:
                self.security.apply(sock)
            sock.bind(self.requested_endpoint)
            self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        except BaseException:
            sock.close(linger=0)
            if self._zap is not None:
                self._zap.stop()
                self._zap = None
            raise
        return sock

    def drain(self) -> None:
        """Take no new call or cast (each gets ServerDraining, retryable); answer the rest.

        Pings are still answered. `in_flight` says when every request taken
        before has been answered; then `stop()`.
        """
        with self._count_lock:  # a request is refused, or counted before this returns
            self.draining = True

    def stop(self, linger: float = 1.0) -> None:
        """Stop reading, flush queued replies for up to `linger` seconds, close."""
        if self._loop is not None:
            self._loop.stop(linger)
            self._loop = None
        if self._zap is not None:
            self._zap.stop()
            self._zap = None
        context, self._context = self._context, None
        if context is None:
            return
        # Ours are closed by now; a client handed `context` for an inproc://
        # endpoint may still hold one of its sockets, and term() would wait for
        # it with no deadline. Then the context is left to that client: it ends
        # when the last of its sockets does (pyzmq destroys it once unused).
        others = [sock for sock in getattr(context, "_sockets", ()) if not sock.closed]
        if others:
            log.warning(
                "rpc server %s stopped; its context stays open for %d socket(s) of"
                " inproc clients that share it",
                self.endpoint,
                len(others),
            )
            return
        context.term()

    # -- incoming ----------------------------------------------------------------------
    def _on_oversized(self, frames: list[bytes], count: int, size: int) -> None:
        """A message over the frame or byte bound, dropped as it was read: answer it."""
        self.stats["messages"] += 1
        head = frames[:2] if len(frames) > 2 and frames[1] == b"" else frames[:1]
        if count > 3:
            error = ProtocolError(f"expected one body frame, got {count - 1}")
        else:
            error = ProtocolError(f"message of {size} bytes is over the limit")
        self._bad("bad_frames", head, error, "")

    def _on_frames(self, frames: list[bytes]) -> None:
        self.stats["messages"] += 1
        if len(frames) == 2:
            identity, body = frames
            prefix: list[bytes] = [identity]
        elif len(frames) == 3 and frames[1] == b"":
            identity, _, body = frames
            prefix = [identity, b""]
        else:
            # Echo the empty delimiter if the peer looks like a REQ socket.
            head = frames[:2] if len(frames) > 2 and frames[1] == b"" else frames[:1]
            self._bad(
                "bad_frames",
                head,
                ProtocolError(f"expected one body frame, got {len(frames) - 1}"),
                "",
            )
            return
        try:
            envelope = decode(body, self.limits)
        except ProtocolError as exc:
            self._bad("bad_envelope", prefix, exc, exc.details.get("id") or "")
            return
        except Exception as exc:  # a decoder bug must still get an answer
            self._bad("bad_envelope", prefix, ProtocolError(f"undecodable: {exc!r}"), "")
            return
        if envelope.kind not in REQUEST_KINDS:
            self._bad(
                "unexpected_kind",
                prefix,
                ProtocolError(f"a server does not accept {envelope.kind!r} messages"),
                envelope.id,
            )
            return
        if envelope.kind == PING:
            self.stats["pings"] += 1
            self._send(prefix, Envelope(PONG, envelope.id, info=self._info()))
            return
        size = len(body)
        with self._count_lock:  # checked and counted together: drain() cannot fall between
            draining = self.draining
            held = self._peer_bytes.get(identity, 0)
            over = (
                "this client's"
                if held + size > self.max_peer_bytes
                else "all clients'"
                if self.held_bytes + size > self.max_held_bytes
                else ""
            )
            if not draining and not over:
                self.in_flight += 1
                self._peer_bytes[identity] = held + size
                self.held_bytes += size
        if draining:
            self.stats["refused_draining"] += 1
            self._reply_error(prefix, envelope, ServerDraining(self.endpoint))
            return
        if over:
            self.stats["refused_overloaded"] += 1
            limit = self.max_peer_bytes if over == "this client's" else self.max_held_bytes
            self._reply_error(prefix, envelope, ServerOverloaded(self.endpoint, over, limit))
            return
        request = Request(
            envelope.target or "",
            envelope.method or "",
            envelope.args or {},
            envelope.timeout or self.limits.default_timeout,
            envelope.version,
            envelope.key,
            envelope.kind == CAST,
            identity.hex(),
            envelope.scope,
        )
        self.stats[envelope.kind] += 1
        try:
            future = self.dispatcher.dispatch(request)
        except Exception as exc:
            self._reply_error(prefix, envelope, exc)
            self._release(identity, size)  # after the answer is queued, as in _on_done
            return
        future.add_done_callback(lambda done: self._on_done(prefix, envelope, done, size))

    def _info(self) -> dict[str, Any]:
        try:
            return {"protocol": PROTOCOL_VERSION, **self.dispatcher.info()}
        except Exception as exc:  # info must never break ping
            return {"protocol": PROTOCOL_VERSION, "info_error": str(exc)}

    def _bad(self, category: str, prefix: list[bytes], error: TransportError, msg_id: str) -> None:
        self.stats[category] += 1
        self._log.warn(category, "rejected a message (%s): %s", category, error.message)
        self._send(prefix, Envelope(ERROR, msg_id, error=error_body(error)))

    # -- outgoing ----------------------------------------------------------------------
    def _release(self, identity: bytes, size: int) -> None:
        """A request is answered: it no longer counts as in flight or as held bytes."""
        with self._count_lock:
            self.in_flight -= 1
            self.held_bytes -= size
            left = self._peer_bytes[identity] - size
            if left:
                self._peer_bytes[identity] = left
            else:
                del self._peer_bytes[identity]

    def _on_done(self, prefix: list[bytes], envelope: Envelope, done: Any, size: int) -> None:
        try:
            error = done.exception()
            if error is not None:
                self._reply_error(prefix, envelope, error)
            elif envelope.kind == CALL:
                self._send_reply(prefix, envelope.id, done.value())
            else:
                info = done.value()
                self._send(
                    prefix,
                    Envelope(ACK, envelope.id, info=info if isinstance(info, dict) else None),
                )
        finally:
            # Only once the answer is queued: a drain that sees zero in flight
            # then stops the socket after it, so the answer is still sent.
            self._release(prefix[0], size)

    def _reply_error(self, prefix: list[bytes], envelope: Envelope, error: BaseException) -> None:
        self.stats["error_replies"] += 1
        tb = None
        if not isinstance(error, TransportError):
            tb = "".join(traceback.format_exception(error))
            self._log.warn("unexpected", "%s.%s raised %r", envelope.target, envelope.method, error)
        self._send(prefix, Envelope(ERROR, envelope.id, error=error_body(error, traceback=tb)))

    def _send(self, prefix: list[bytes], envelope: Envelope) -> None:
        try:
            body = encode(envelope, self.limits)
        except ProtocolError as exc:  # a result that cannot be sent
            self._send_unencodable(prefix, envelope.id, exc)
            return
        loop = self._loop
        if loop is not None:
            loop.send([*prefix, body])

    def _send_reply(self, prefix: list[bytes], msg_id: str, result: Any) -> None:
        """`_send` of a reply, without building its Envelope (the most frequent message)."""
        try:
            body = encode_reply(msg_id, result, self.limits)
        except ProtocolError as exc:
            self._send_unencodable(prefix, msg_id, exc)
            return
        loop = self._loop
        if loop is not None:
            loop.send([*prefix, body])

    def _send_unencodable(self, prefix: list[bytes], msg_id: str, error: ProtocolError) -> None:
        """A result that cannot be sent: the caller gets the reason instead."""
        self.stats["unencodable_results"] += 1
        body = encode(Envelope(ERROR, msg_id, error=error_body(error)), self.limits)
        loop = self._loop
        if loop is not None:
            loop.send([*prefix, body])
