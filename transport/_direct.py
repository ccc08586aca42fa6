"""`DirectSocket`: a threaded client's socket, used by its calling threads themselves.

No I/O thread and no handoff per call: a caller sends on the socket itself
(under a lock, never waiting; a message with no room yet is parked, in order,
and retried). Replies are read leader/follower: a caller that waits and finds
nobody reading becomes the reader and reads for everyone (resolving their
futures) until its own reply is in or its deadline passes; then it hands the
role on. The others wait on a condition, woken when their replies are in.

ZeroMQ's descriptor is edge-triggered: whoever sends checks afterwards whether
messages came in and, if someone is waiting on the descriptor, wakes it
through a pipe (written only then, and on close).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from transport._loop import (
    EVENTS,
    POLLIN,
    READ_BATCH,
    OnFrames,
    OnOversized,
    Shape,
    SocketFactory,
    SocketLoop,
)
from transport._parked import Parked

log = logging.getLogger("transport.io")


class DirectSocket(SocketLoop):
    """A socket shared by the threads that call through it (see the module's doc)."""

    def __init__(
        self,
        factory: SocketFactory,
        on_frames: OnFrames,
        name: str,
        context: Any = None,
        shape: Shape | None = None,
        on_oversized: OnOversized | None = None,
    ) -> None:
        super().__init__(factory, on_frames, name, context, shape, on_oversized)
        self._sock_lock = threading.Lock()  # every use of the socket (and its monitor)
        self._cond = threading.Condition(threading.Lock())
        self._reading = False  # a caller is the reader
        self._followers = 0  # callers waiting for the reader
        self._closed = False
        self._retrying = False  # a helper thread retries parked messages (see _retry_parked)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._poll: Any = None
        self._monitor_poll = select.poll()  # the monitor's descriptor alone
        self._sock_fd = -1
        self.socket: Any = None

    def start(self) -> None:
        try:
            self.socket = self._open(self._context)
        except BaseException:
            self._close_pipe()
            if self._own_context:
                self._context.term()
            raise
        self._parked.for_socket(self.socket.type)
        self._sock_fd = self.socket.FD
        self._poll = select.poll()
        self._poll.register(self._sock_fd, select.POLLIN)
        self._poll.register(self._wake_r, select.POLLIN)
        if self._monitor is not None:
            self._poll.register(self._monitor.FD, select.POLLIN)
            self._monitor_poll.register(self._monitor.FD, select.POLLIN)
            # Asked once now: a new pipe's reader is not yet "asleep", so the first
            # events would come without a signal on the descriptor. Asking the
            # socket (and draining it) arms it: from now on every event that
            # comes to the drained monitor moves its descriptor.
            SocketLoop.read_events(self)

    # -- sending -------------------------------------------------------------------
    def send(self, frames: list[bytes], expires: float | None = None) -> None:
        now = time.monotonic()
        if expires is None:
            expires = now + 5.0
        with self._sock_lock:
            sock = self.socket
            if sock is None or self._closed:
                self._dropped += 1
                return
            parked = self._parked
            if parked and parked.due(now):
                parked.retry(self._send_now, now)
            try:
                self._send_or_park(frames, expires, now)
            except zmq.ZMQError as exc:
                self._dropped += 1
                log.debug("%s: send failed: %s", self.name, exc)
            if parked and not self._retrying:
                self._retrying = True
                threading.Thread(
                    target=self._retry_parked, name=f"zmq-retry-{self.name}", daemon=True
                ).start()
            if self._reading and sock.get(EVENTS) & POLLIN:
                self._poke()  # our send took the descriptor's edge from the reader

    def _retry_parked(self) -> None:
        """While messages are parked (no connection yet, a full pipe), retry them even
        if no caller waits: a request made with call_async alone must still go out."""
        parked = self._parked

        def settled() -> bool:
            return self._closed or not parked

        while True:
            self.wait(settled, time.monotonic() + 1.0)
            with self._sock_lock:  # parking happens under it too: none is left behind
                if settled():
                    self._retrying = False
                    return

    def reconnect(self, endpoint: str) -> None:
        with self._sock_lock:
            if self.socket is not None and not self._closed:
                self._do_reconnect(endpoint)

    def _poke(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except OSError:
            pass  # full (a wake-up is pending) or closed

    # -- waiting -------------------------------------------------------------------
    def read_ready(self) -> None:
        """Read the replies that are in, unless someone is reading already (never waits)."""
        with self._cond:
            if self._reading or self._closed:
                return
            self._reading = True
        try:
            with self._sock_lock:
                if self.socket is not None and not self._closed:
                    self._read_all()
        finally:
            with self._cond:
                self._reading = False
                if self._followers or self._closed:
                    self._cond.notify_all()

    def read_events(self) -> None:
        """Take in the socket's monitor events now (never waits; replies are left).

        Its descriptor is looked at first, a poll that never waits: a drained
        monitor's descriptor stays quiet until a new event comes, and asking
        the monitor socket itself costs several times more.
        """
        if self._monitor is None:
            return
        with self._sock_lock:  # which also keeps the poll object to one thread at a time
            if not self._closed and self._monitor_poll.poll(0):
                super().read_events()

    def wait(self, done: Callable[[], bool], deadline: float) -> bool:
        """Until `done()` or the deadline (monotonic); reads for everyone while needed."""
        cond = self._cond
        with cond:
            while True:
                if done():
                    return True
                if self._closed:
                    return done()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if not self._reading:
                    self._reading = True
                    break
                self._followers += 1
                try:
                    cond.wait(remaining)
                finally:
                    self._followers -= 1
        try:
            return self._lead(done, deadline)
        finally:
            with cond:
                self._reading = False
                if self._followers or self._closed:
                    cond.notify_all()  # one of them reads next (or stop() goes on)

    def _lead(self, done: Callable[[], bool], deadline: float) -> bool:
        poll, parked = self._poll, self._parked
        # What the last poll saw move: the socket is then read without asking it
        # first (a message is nearly always there), and the monitor is looked at
        # only when its descriptor moved (one that is drained stays quiet until
        # a new event comes: ZeroMQ signals a pipe's reader when it wakes it).
        readable = monitor_moved = False
        while True:
            with self._sock_lock:
                if self.socket is None or self._closed:
                    return done()
                got = self._read_all(readable, monitor_moved)
                now = time.monotonic()
                if parked.due(now):
                    parked.retry(self._send_now, now)
            if got and self._followers:
                with self._cond:
                    self._cond.notify_all()
            if done():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if parked:
                remaining = min(remaining, Parked.RETRY_EVERY)
            readable = monitor_moved = False
            for fd, _ in poll.poll(max(1, int(remaining * 1000 + 0.999))):
                if fd == self._sock_fd:
                    readable = True
                elif fd == self._wake_r:
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except OSError:
                        pass
                else:
                    monitor_moved = True

    def _read_all(self, readable: bool = False, monitor_moved: bool = True) -> int:
        """Read every message (and monitor event) that is ready; how many messages.

        Unless `readable`, the socket is asked first: nearly always nothing is
        there then, and a read that fails raises zmq.Again, about twice the
        cost of asking.
        """
        sock, total = self.socket, 0
        while readable or sock.get(EVENTS) & POLLIN:
            readable = False
            try:
                n = self._read_ready(self._on_frames)
            except zmq.ZMQError as exc:
                log.warning("%s: receive failed: %s", self.name, exc)
                break
            total += n
            if n < READ_BATCH:
                break  # _read_ready stopped at the last one ready
        if monitor_moved:
            SocketLoop.read_events(self)
        return total

    # -- lifecycle -----------------------------------------------------------------
    def stop(self, linger: float = 1.0) -> None:
        """Close: a reader still waiting is woken and leaves first (within `linger`)."""
        with self._cond:
            if self._closed or self.socket is None:
                self._closed = True
                return
            self._closed = True
            self._cond.notify_all()
        self._poke()
        end = time.monotonic() + linger + 5
        with self._cond:
            while self._reading:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        with self._sock_lock:
            self._parked.discard()
            self._close_monitor()
            self.socket.close(linger=int(linger * 1000))
            self.socket = None
        if self._own_context:
            self._context.term()
        self._close_pipe()

    def _close_pipe(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
