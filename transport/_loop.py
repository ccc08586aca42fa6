"""What every socket loop shares: reading one message within bounds, the outbox, parking.

A loop owns one ZeroMQ socket. Whatever it reads goes to `on_frames`; what it
is given to send waits in a bounded outbox (in messages and in bytes) until the
loop writes it, and a peer with no room gets its messages parked (`Parked`)
instead of holding up everyone else.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from transport._parked import Parked

log = logging.getLogger("transport.io")

SocketFactory = Callable[[Any], Any]
"""Given a context, return a configured, bound or connected socket."""
OnFrames = Callable[[list[bytes]], None]
OnOversized = Callable[[list[bytes], int, int], None]
"""Given the first frames kept, how many frames and bytes the dropped message had."""

MONITORED = zmq.EVENT_HANDSHAKE_FAILED_AUTH
"""Socket events a loop passes to `on_event` (a refused CURVE handshake)."""
REPLY_SEND_PATIENCE = 5.0
"""Seconds a reply may wait for room at a slow or vanished peer before it is dropped."""
READ_BATCH = 256
"""Messages read in one go before the others (writers, actors) get a turn."""


@dataclass(frozen=True)
class Shape:
    """The largest message a loop takes in; anything larger is dropped as it is read.

    ZeroMQ's MAXMSGSIZE bounds each frame, not the number of frames: a message
    of a thousand frames would otherwise be copied whole into Python first.
    Frames past the bounds are received without a copy and let go at once.
    """

    max_frames: int = 64
    max_bytes: int = 4 << 20


_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
EVENTS, POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)
"""Plain ints: pyzmq's flag enums cost a Python call per `|` or `&`."""


def recv_message(sock: Any, shape: Shape, flags: int = _NOBLOCK) -> tuple[list[bytes], int, int]:
    """Read one message: (the frames kept, how many frames it had, its size in bytes).

    Raises zmq.Again when nothing is ready. When the count or the size is over
    `shape`, only the frames read before that are kept (the caller drops it).
    Frames are read as `zmq.Frame`s for their `more` flag: asking the socket
    for RCVMORE costs an enum lookup in pyzmq each time.
    """
    frame = sock.recv(flags, copy=False)
    first: bytes = frame.bytes
    if not frame.more:
        return [first], 1, len(first)
    frames = [first]
    count, size = 1, len(first)
    max_frames, max_bytes = shape.max_frames, shape.max_bytes
    while True:
        count += 1
        frame = sock.recv(copy=False)  # the rest of a message is there already
        if count <= max_frames and size <= max_bytes:
            frames.append(frame.bytes)
        # else: over a bound, counted, never kept
        size += len(frame)
        if not frame.more:
            return frames, count, size


def send_frames(sock: Any, frames: list[bytes]) -> None:
    """`sock.send_multipart(frames, zmq.NOBLOCK)`, without its per-call checks and enums.

    Raises zmq.Again (nothing sent: a ROUTER or DEALER takes a message whole
    or refuses its first frame) like send_multipart does.
    """
    send = sock.send
    last = len(frames) - 1
    for i in range(last):
        send(frames[i], _MORE_NOBLOCK)
    send(frames[last], _NOBLOCK)


class _Reconnect:
    """An outbox item: connect to `endpoint` again, in the loop that owns the socket."""

    __slots__ = ("endpoint",)

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint


class Outbox:
    """Messages given to a loop and not yet written: a FIFO bounded in messages and bytes.

    Beyond a bound a new message is refused (the caller counts it as dropped):
    replies nobody can write fast enough must not grow without limit.
    """

    def __init__(self, max_messages: int = 100_000, max_bytes: int = 256 << 20) -> None:
        self.max_messages, self.max_bytes = max_messages, max_bytes
        self._items: deque[Any] = deque()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def put(self, frames: list[bytes], expires: float) -> bool:
        """Queue frames; False (not queued) when a bound would be passed."""
        size = sum(map(len, frames))
        if len(self._items) >= self.max_messages or self.bytes + size > self.max_bytes:
            return False
        self.bytes += size
        self._items.append((frames, expires, size))
        return True

    def put_control(self, item: Any) -> None:
        """Queue a control item (a reconnect, a stop); not counted against the bounds."""
        self._items.append((item, 0.0, 0))

    def get(self) -> tuple[Any, float]:
        """The oldest item and its expiry; raises IndexError when empty."""
        item, expires, size = self._items.popleft()
        self.bytes -= size
        return item, expires

    def take_all(self) -> deque[tuple[Any, float, int]]:
        """Everything queued, oldest first (items, expiries, sizes), leaving it empty."""
        items, self._items = self._items, deque()
        self.bytes = 0
        return items


class SocketLoop:
    """Interface and shared parts of the loops."""

    socket: Any
    name: str

    def __init__(
        self,
        factory: SocketFactory,
        on_frames: OnFrames,
        name: str,
        context: Any = None,
        shape: Shape | None = None,
        on_oversized: OnOversized | None = None,
    ) -> None:
        self._factory, self._on_frames, self.name = factory, on_frames, name
        self._own_context = context is None  # made here: terminated at stop
        self._context = self._new_context() if context is None else context
        self._parked = Parked()
        self._dropped = 0
        self.shape = shape or Shape()
        self.oversized = 0
        """Messages dropped as they were read for being over `shape`."""
        self._on_oversized = on_oversized
        self.on_event: Callable[[dict[str, Any]], None] | None = None
        """Set before start(): gets the socket's monitor events (see MONITORED)."""
        self.monitored = MONITORED
        """Which events on_event gets (a bit mask of zmq.EVENT_*); set before start()."""
        self._monitor: Any = None
        self.connect_to: str | None = None
        """Set before start(): connected to once the monitor watches (no event missed)."""

    def _new_context(self) -> Any:
        """The context of a loop given none (a green loop needs a green one)."""
        return zmq.Context()

    def _open(self, context: Any) -> Any:
        """The factory's socket, its events watched (if asked), then connected to `connect_to`.

        In that order: an event that comes before the monitor is connected is
        lost (the first handshake would be). A socket that cannot be connected
        (a malformed endpoint) is closed and the error raised, as the
        factory's own would be; a monitor that cannot be made is only logged.
        """
        sock = self._factory(context)
        try:
            if self.on_event is not None:
                try:
                    self._monitor = sock.get_monitor_socket(self.monitored)
                except zmq.ZMQError as exc:
                    log.warning("%s: no socket monitor: %s", self.name, exc)
            if self.connect_to is not None:
                sock.connect(self.connect_to)
        except BaseException:
            if self._monitor is not None:
                self._monitor.close(linger=0)
                self._monitor = None
            sock.close(linger=0)
            raise
        return sock

    def _on_monitor_frames(self, frames: list[bytes]) -> None:
        from zmq.utils.monitor import parse_monitor_message

        try:
            event = parse_monitor_message(frames)
        except Exception:  # a malformed event: nothing to act on
            return
        assert self.on_event is not None
        try:
            self.on_event(dict(event))
        except Exception:
            log.exception("socket event handler failed")

    def read_events(self) -> None:
        """Take in the socket's monitor events now; never waits.

        Called by a client before it registers a request, so that a drop the
        socket reported earlier is never taken for news about that request.
        A loop whose monitor is shared with another thread overrides this
        with its own locking (`DirectSocket`).
        """
        monitor = self._monitor
        while monitor is not None:
            try:
                # Asked first: nearly always nothing waits, and a read that fails
                # raises zmq.Again, three times the cost (once per request).
                if not monitor.get(EVENTS) & POLLIN:
                    return
                frames = monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.ZMQError:  # nothing more (EAGAIN), or closed
                return
            self._on_monitor_frames(frames)

    def _close_monitor(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            try:
                self.socket.disable_monitor()
            except zmq.ZMQError:
                pass
            monitor.close(linger=0)

    def _read_ready(self, on_frames: OnFrames, limit: int = READ_BATCH) -> int:
        """Read and hand on up to `limit` messages that are ready; how many were read.

        Raises zmq.ZMQError (other than EAGAIN) for the caller to judge.
        """
        sock, shape = self.socket, self.shape
        n = 0
        while n < limit:
            try:
                frames, count, size = recv_message(sock, shape)
            except zmq.Again:
                break
            n += 1
            try:
                if count > shape.max_frames or size > shape.max_bytes:
                    self.oversized += 1
                    if self._on_oversized is not None:
                        self._on_oversized(frames, count, size)
                else:
                    on_frames(frames)
            except Exception:
                log.exception("%s: handling a message failed", self.name)
            if n == 1 and not sock.get(EVENTS) & POLLIN:
                # A lone message (a sequential caller): asking the socket is a
                # third of the cost of a read that fails with zmq.Again.
                break
        return n

    @property
    def dropped_sends(self) -> int:
        """Messages dropped: expired before their peer had room, unroutable, or over a bound."""
        return self._dropped + self._parked.dropped

    def _send_or_park(self, frames: list[bytes], expires: float, now: float) -> None:
        """Send without waiting; a peer with no room gets its message parked, not the others.

        Raises zmq.ZMQError (other than EAGAIN) for the caller to judge.
        """
        parked = self._parked
        if parked and parked.holds(frames):
            parked.park(frames, expires)  # behind that peer's waiting ones
        elif now >= expires:
            self._dropped += 1  # its deadline passed before it could be sent
        else:
            try:
                send_frames(self.socket, frames)
            except zmq.Again:
                parked.park(frames, expires)

    def _send_now(self, frames: list[bytes]) -> None:
        send_frames(self.socket, frames)

    def _do_reconnect(self, endpoint: str) -> None:
        # What waits was sent for requests that were refused and failed: it must
        # not reach the server once a new handshake succeeds.
        self._parked.discard()
        try:
            self.socket.disconnect(endpoint)
        except zmq.ZMQError:
            pass  # the refused session is gone already
        try:
            self.socket.connect(endpoint)
        except zmq.ZMQError as exc:
            log.warning("%s: reconnecting to %s failed: %s", self.name, endpoint, exc)

    def reconnect(self, endpoint: str) -> None:
        """Connect to `endpoint` again, e.g. after the server refused our CURVE key:
        libzmq does not retry a refused handshake by itself."""
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def send(self, frames: list[bytes], expires: float | None = None) -> None:
        """Queue frames; drop them if not sent by `expires` (monotonic seconds)."""
        raise NotImplementedError

    def stop(self, linger: float = 1.0) -> None:
        raise NotImplementedError


def default_expiry(expires: float | None) -> float:
    """A message's expiry: its own, or REPLY_SEND_PATIENCE from now."""
    return time.monotonic() + REPLY_SEND_PATIENCE if expires is None else expires
