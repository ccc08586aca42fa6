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

from transport._io import SocketLoop, make_loop, running_under_gevent
from transport.dispatcher import Dispatcher, Request
from transport.errors import ProtocolError, ServerDraining, TransportError
from transport.protocol import (
    ACK,
    CALL,
    CAST,
    DEFAULT_LIMITS,
    ERROR,
    PING,
    PONG,
    REPLY,
    REQUEST_KINDS,
    Envelope,
    Limits,
    decode,
    encode,
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
        self._loop = make_loop(
            self.green, self._make_socket, self._on_frames, "rpc-server", self._context
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
            sock.setsockopt(zmq.RCVHWM, self.high_water_mark)
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
        if self._context is not None:
            self._context.term()  # every socket of it is closed by now
            self._context = None

    # -- incoming ----------------------------------------------------------------------
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
        with self._count_lock:  # checked and counted together: drain() cannot fall between
            draining = self.draining
            if not draining:
                self.in_flight += 1
        if draining:
            self.stats["refused_draining"] += 1
            self._reply_error(prefix, envelope, ServerDraining(self.endpoint))
            return
        request = Request(
            target=envelope.target or "",
            method=envelope.method or "",
            args=envelope.args or {},
            timeout=envelope.timeout or self.limits.default_timeout,
            version=envelope.version,
            key=envelope.key,
            cast=envelope.kind == CAST,
            peer=identity.hex(),
        )
        self.stats[envelope.kind] += 1
        try:
            future = self.dispatcher.dispatch(request)
        except Exception as exc:
            self._reply_error(prefix, envelope, exc)
            with self._count_lock:  # after the answer is queued, as in _on_done
                self.in_flight -= 1
            return
        future.add_done_callback(lambda done: self._on_done(prefix, envelope, done))

    def _info(self) -> dict[str, Any]:
        try:
            return {"protocol": 1, **self.dispatcher.info()}
        except Exception as exc:  # info must never break ping
            return {"protocol": 1, "info_error": str(exc)}

    def _bad(self, category: str, prefix: list[bytes], error: TransportError, msg_id: str) -> None:
        self.stats[category] += 1
        self._log.warn(category, "rejected a message (%s): %s", category, error.message)
        self._send(prefix, Envelope(ERROR, msg_id, error=error_body(error)))

    # -- outgoing ----------------------------------------------------------------------
    def _on_done(self, prefix: list[bytes], envelope: Envelope, done: Any) -> None:
        try:
            error = done.exception()
            if error is not None:
                self._reply_error(prefix, envelope, error)
            elif envelope.kind == CALL:
                self._send(prefix, Envelope(REPLY, envelope.id, result=done.value()))
            else:
                info = done.value()
                self._send(
                    prefix,
                    Envelope(ACK, envelope.id, info=info if isinstance(info, dict) else None),
                )
        finally:
            # Only once the answer is queued: a drain that sees zero in flight
            # then stops the socket after it, so the answer is still sent.
            with self._count_lock:
                self.in_flight -= 1

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
            self.stats["unencodable_results"] += 1
            body = encode(Envelope(ERROR, envelope.id, error=error_body(exc)), self.limits)
        loop = self._loop
        if loop is not None:
            loop.send([*prefix, body])
