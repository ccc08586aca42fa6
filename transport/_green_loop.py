"""`GreenSocketLoop`: a plain zmq socket served in gevent's hub thread.

It waits on the socket's file descriptor through the hub directly instead of
going through zmq.green for every message: one reader greenlet reads every
message that is ready (READ_BATCH at most before it lets the others run) and
waits on the descriptor only when there is nothing left. What is sent is
queued and written in one batch per turn of the hub, by a hub callback, never
waiting: a peer with no room has its messages parked.

ZeroMQ's descriptor is edge-triggered (it says "look at the socket", not
"there is a message"): after every batch of sends the writer looks whether
messages came in meanwhile and, if so, wakes the reader itself.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import zmq

from transport._loop import (
    EVENTS,
    POLLIN,
    READ_BATCH,
    OnFrames,
    OnOversized,
    Outbox,
    Shape,
    SocketFactory,
    SocketLoop,
    _Reconnect,
    default_expiry,
)
from transport._parked import Parked

log = logging.getLogger("transport.io")

_GONE = (zmq.ETERM, zmq.ENOTSOCK)


class GreenSocketLoop(SocketLoop):
    """A socket served by one reader greenlet and a writing hub callback."""

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
        self._outbox = Outbox()
        self._hub: Any = None
        self._greenlets: list[Any] = []
        self._waiter: Any = None  # the reader's, while it waits on the descriptor
        self._flush_due = False
        self._timer: Any = None
        self._closed = False
        self.socket: Any = None

    def _new_context(self) -> Any:
        import zmq.green

        return zmq.green.Context()

    def start(self) -> None:
        import gevent

        # Plain sockets on the same libzmq context (inproc:// peers still meet).
        plain: Any = zmq.Context.shadow(self._context.underlying)
        try:
            self.socket = self._open(plain)
        except BaseException:
            if self._own_context:
                self._context.term()
            raise
        self._hub = gevent.get_hub()
        self._parked.for_socket(self.socket.type)
        self._greenlets = [gevent.spawn(self._read)]
        if self._monitor is not None:
            self._greenlets.append(gevent.spawn(self._watch))

    def _wait_readable(self, watcher: Any, main: bool) -> None:
        from gevent.hub import Waiter

        waiter = Waiter(self._hub)
        if main:
            self._waiter = waiter
        watcher.start(waiter.switch, None)
        try:
            waiter.get()
        finally:
            watcher.stop()
            if main:
                self._waiter = None

    def _read(self) -> None:
        import gevent

        watcher = self._hub.loop.io(self.socket.FD, 1)
        try:
            while True:
                try:
                    n = self._read_ready(self._on_frames)
                except zmq.ZMQError as exc:
                    if exc.errno in _GONE:
                        return
                    log.warning("%s: receive failed: %s", self.name, exc)
                    n = 0
                if n == READ_BATCH:
                    # More may be ready: let replies and actors run before the next batch.
                    gevent.sleep(0)
                else:
                    self._wait_readable(watcher, main=True)
        finally:
            watcher.close()

    def _watch(self) -> None:
        monitor = self._monitor
        watcher = self._hub.loop.io(monitor.FD, 1)
        try:
            while self._monitor is not None:
                self.read_events()
                self._wait_readable(watcher, main=False)
        finally:
            watcher.close()

    # -- writing ---------------------------------------------------------------------
    def send(self, frames: list[bytes], expires: float | None = None) -> None:
        if not self._outbox.put(frames, default_expiry(expires)):
            self._dropped += 1
            return
        self._schedule_flush()

    def reconnect(self, endpoint: str) -> None:
        self._outbox.put_control(_Reconnect(endpoint))
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_due and self._hub is not None and not self._closed:
            self._flush_due = True
            self._hub.loop.run_callback(self._flush)

    def _flush(self) -> None:
        """Write (or park) what is queued, in one batch; then wake the reader if needed."""
        self._flush_due = False
        sock = self.socket
        if sock is None or self._closed:
            return
        outbox, parked = self._outbox, self._parked
        now = time.monotonic()
        touched = False
        try:
            n = 0
            while outbox:
                item, expires = outbox.get()
                touched = True
                if type(item) is _Reconnect:
                    self._do_reconnect(item.endpoint)
                    continue
                try:
                    self._send_or_park(item, expires, now)
                except zmq.ZMQError as exc:
                    if exc.errno in _GONE:
                        return
                    self._dropped += 1
                    log.debug("%s: send failed: %s", self.name, exc)
                n += 1
                if n % READ_BATCH == 0:
                    if parked:  # a peer with room again need not wait for the whole burst
                        parked.retry(self._send_now, now)
                    if outbox:  # the others get a turn before the rest
                        self._schedule_flush()
                        break
            if parked and parked.due(now):
                touched = True
                parked.retry(self._send_now, now)
            if parked:
                self._arm_retry()
            waiter = self._waiter
            if touched and waiter is not None and sock.get(EVENTS) & POLLIN:
                waiter.switch(None)  # our sends took the descriptor's edge: read now
        except zmq.ZMQError as exc:
            if exc.errno not in _GONE:
                raise

    def _arm_retry(self) -> None:
        if self._timer is None:
            self._timer = self._hub.loop.timer(Parked.RETRY_EVERY)
            self._timer.start(self._on_retry_timer)

    def _on_retry_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.close()
        self._schedule_flush()

    # -- lifecycle -------------------------------------------------------------------
    def stop(self, linger: float = 1.0) -> None:
        import gevent

        if not self._greenlets:
            return
        for greenlet in self._greenlets:
            greenlet.kill(block=True, timeout=linger)
        self._greenlets = []
        self._flush()  # what is queued gets one go, as the socket's linger allows
        self._closed = True
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.stop()
            timer.close()
        self._parked.discard()
        self._close_monitor()
        self.socket.close(linger=int(linger * 1000))
        if self._own_context:
            gevent.spawn(self._context.term).join(timeout=linger)
