"""`ThreadSocketLoop`: a plain zmq socket owned by one I/O thread (reads and writes).

Other threads queue frames in a bounded outbox and poke a wake-up pipe, once
per batch: the pipe is written only when the I/O thread is not already due to
look at the outbox. The thread reads every message that is ready (up to
READ_BATCH) before it writes the replies queued meanwhile, all in one pass.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import zmq

from transport._loop import (
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

_STOP: Any = object()


class ThreadSocketLoop(SocketLoop):
    """A plain zmq socket owned by one I/O thread (reads and writes)."""

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
        self._outbox_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._woken = False  # a wake-up is written and the I/O thread has not taken it yet
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._linger = 1.0
        self._pipe_lock = threading.Lock()
        self._pipe_open = True
        self.socket: Any = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"zmq-{self.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(30.0):
            raise TimeoutError(f"{self.name}: the socket thread did not start within 30s")
        if self._error is not None:
            self._thread.join(5)
            self._close_pipe()
            raise self._error

    def _run(self) -> None:
        try:
            self.socket = self._open(self._context)
        except BaseException as exc:
            self._error = exc
            if self._own_context:
                self._context.term()
            self._ready.set()
            return
        self._parked.for_socket(self.socket.type)
        self._ready.set()
        sock = self.socket
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        monitor = self._monitor
        if monitor is not None:
            poller.register(monitor, zmq.POLLIN)
        parked = self._parked
        retry_ms = int(Parked.RETRY_EVERY * 1000)
        more_to_read = False
        while True:
            try:
                timeout = 0 if more_to_read else (retry_ms if parked else None)
                events = dict(poller.poll(timeout))
            except zmq.ZMQError:
                break
            more_to_read = False
            if events.get(sock):
                try:
                    more_to_read = self._read_ready(self._on_frames) == READ_BATCH
                except zmq.ZMQError as exc:
                    log.warning("%s: receive failed: %s", self.name, exc)
            if monitor is not None and events.get(monitor):
                self.read_events()
            if self._wake_r in events:
                try:
                    # One read: a wake-up is written once per batch, so a few bytes
                    # at most wait; any left make the next poll return at once.
                    os.read(self._wake_r, 4096)
                except BlockingIOError:
                    pass
            if not self._write_queued():
                break
            now = time.monotonic()
            if parked.due(now):
                parked.retry(self._send_now, now)
        parked.discard()
        self._close_monitor()
        sock.close(linger=int(self._linger * 1000))
        if self._own_context:
            self._context.term()
        self._close_pipe()

    def _write_queued(self) -> bool:
        """Write (or park) everything queued; False once a stop was asked for."""
        self._woken = False  # before taking: a later put writes a new wake-up
        with self._outbox_lock:
            items = self._outbox.take_all()
        now = time.monotonic()
        for item, expires, _size in items:
            if item is _STOP:
                return False
            if type(item) is _Reconnect:
                self._do_reconnect(item.endpoint)
                continue
            try:
                self._send_or_park(item, expires, now)
            except zmq.ZMQError as exc:
                self._dropped += 1
                log.debug("%s: send failed: %s", self.name, exc)
        return True

    def send(self, frames: list[bytes], expires: float | None = None) -> None:
        with self._outbox_lock:
            queued = self._outbox.put(frames, default_expiry(expires))
        if not queued:
            self._dropped += 1
            return
        self._wake()

    def reconnect(self, endpoint: str) -> None:
        # What was queued before it belongs to refused requests: dropped (and
        # counted) like the parked ones _do_reconnect drops.
        with self._outbox_lock:
            self._dropped += len(self._outbox)
            self._outbox.take_all()
            self._outbox.put_control(_Reconnect(endpoint))
        self._wake()

    def _wake(self) -> None:
        if self._woken:
            return  # the I/O thread has a wake-up to take and will see this item too
        self._woken = True
        with self._pipe_lock:
            if not self._pipe_open:
                return
            try:
                os.write(self._wake_w, b"\0")
            except OSError:
                pass  # the pipe is full: a wake-up is already pending

    def stop(self, linger: float = 1.0) -> None:
        if self._thread is None:
            return
        self._linger = linger
        with self._outbox_lock:
            self._outbox.put_control(_STOP)
        self._woken = False
        self._wake()
        self._thread.join(linger + 5)
        self._thread = None

    def _close_pipe(self) -> None:
        with self._pipe_lock:
            if not self._pipe_open:
                return
            self._pipe_open = False
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
