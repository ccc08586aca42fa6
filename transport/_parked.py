"""Messages whose peer had no room, kept per peer until they fit or expire (bounded)."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

import zmq

log = logging.getLogger("transport.io")


class Parked:
    """Messages whose peer had no room (a full pipe), kept per peer until they fit or expire.

    A ROUTER with ROUTER_MANDATORY answers EAGAIN when one peer's pipe is full
    (a client that does not read, or one that vanished): waiting for that peer
    would hold up every other peer's replies. Its messages wait here instead,
    in order (a later message to a peer with parked ones queues behind them),
    and are retried every RETRY_EVERY; what expires is dropped and counted.
    Bounded per peer and in all, in messages and in bytes: beyond, a new
    message is dropped at once. On a ROUTER (`routed`) the peer is the first
    frame, its routing id; any other socket has one peer.
    """

    RETRY_EVERY = 0.02  # seconds between retries while something is parked
    ROUTED_PER_PEER = 1_000  # a server's bound per client: a few slow ones cannot take it all

    def __init__(
        self,
        per_peer: int = 10_000,
        total: int = 50_000,
        per_peer_bytes: int = 64 << 20,
        total_bytes: int = 256 << 20,
    ) -> None:
        self.per_peer, self.total = per_peer, total
        self.per_peer_bytes, self.total_bytes = per_peer_bytes, total_bytes
        self.routed = False
        self._queues: dict[bytes, deque[tuple[list[bytes], float, int]]] = {}
        self._bytes: dict[bytes, int] = {}
        self._count = 0
        self._total_bytes = 0
        self._next_retry = 0.0
        self.dropped = 0

    def for_socket(self, socket_type: int) -> None:
        """Fit the bounds to the socket: on a ROUTER each peer is one client of many."""
        self.routed = socket_type == zmq.ROUTER
        if self.routed:
            self.per_peer = min(self.per_peer, self.ROUTED_PER_PEER)

    def __bool__(self) -> bool:
        return self._count > 0

    def __len__(self) -> int:
        return self._count

    @property
    def peers(self) -> int:
        """How many peers have messages waiting."""
        return len(self._queues)

    def _key(self, frames: list[bytes]) -> bytes:
        return frames[0] if self.routed else b""

    def holds(self, frames: list[bytes]) -> bool:
        """Whether messages to this peer are waiting (a new one must go behind them)."""
        return bool(self._queues) and self._key(frames) in self._queues

    def park(self, frames: list[bytes], expires: float) -> None:
        key = self._key(frames)
        size = sum(len(f) for f in frames)
        waiting = self._queues.get(key)
        if (
            self._count >= self.total
            or self._total_bytes + size > self.total_bytes
            or (waiting is not None and len(waiting) >= self.per_peer)
            or self._bytes.get(key, 0) + size > self.per_peer_bytes
        ):
            self.dropped += 1
            return
        if waiting is None:
            waiting = self._queues[key] = deque()
        waiting.append((frames, expires, size))
        self._bytes[key] = self._bytes.get(key, 0) + size
        self._count += 1
        self._total_bytes += size

    def due(self, now: float) -> bool:
        """Whether a retry pass is due (at most one every RETRY_EVERY)."""
        return self._count > 0 and now >= self._next_retry

    def retry(self, send: Callable[[list[bytes]], None], now: float) -> None:
        """Send what fits, peer by peer, oldest first; drop what expired.

        `send` raises zmq.Again when the peer still has no room (that peer
        waits for the next pass) and zmq.ZMQError when it cannot be reached.
        """
        for key in list(self._queues):
            waiting = self._queues[key]
            while waiting:
                frames, expires, size = waiting[0]
                if now >= expires:
                    self.dropped += 1
                else:
                    try:
                        send(frames)
                    except zmq.Again:
                        break
                    except zmq.ZMQError as exc:
                        self.dropped += 1
                        log.debug("send failed: %s", exc)
                waiting.popleft()
                self._count -= 1
                self._total_bytes -= size
                self._bytes[key] -= size
            if not waiting:
                del self._queues[key]
                del self._bytes[key]
        self._next_retry = time.monotonic() + self.RETRY_EVERY

    def discard(self) -> None:
        """Drop everything still waiting (the socket closes), counting it."""
        self.dropped += self._count
        self._queues.clear()
        self._bytes.clear()
        self._count = self._total_bytes = 0
