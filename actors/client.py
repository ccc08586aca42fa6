"""`TopicClient`: call services found in the registry, by topic, routing around failure.

A client names a topic, and either any routable service of it or one
`host@backend`; the registry says where each service listens and which CURVE
key its server has. The client keeps one connection per endpoint and watches
each: a peer whose connection dropped (it closed, or ZMTP heartbeats went
unanswered) is never sent to until it is back, and what was in flight to it
fails at once with `ConnectionLost` instead of at its deadline.

Routing rule (docs/operations.md, "Across hosts"):

- a service is routable when its row is not disabled or stopped, has an
  endpoint, and either heartbeats within its `service_down_time` or our
  connection to it is live (a host that lost its database path but answers
  stays routable);
- if the registry cannot be read, the services last read are used;
- connected peers first, then peers not yet known either way; never one known
  disconnected; among them the one with the fewest requests outstanding.

Failover: a request that is safe to repeat (it has an idempotency `key`, or
the caller says the method is `idempotent`) and fails with `ConnectionLost`
is sent again to another live peer within the caller's original deadline.
Anything else gets the `ConnectionLost` (retryable: whether it ran is unknown).

Keys across the topic: a keyed request to any one service of the topic is
sent with the key scope `topic:<topic>`, so the key names one operation on
every host of the topic (the shared journal enforces it). A retry that finds
the operation unfinished on a host still up hears `OperationInProgress` and
is repeated, paced, until that host finishes it or is found down and the
retry's host takes it over, all within the caller's deadline. Such a request
refused by a host where nothing ran (`HostFenced`: it lost the registry;
`DatabaseUnavailable`: it could not record it) goes on to another host.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from actors.errors import HostFenced, NotFound, OperationInProgress
from actors.registry import Registry, ServiceRecord
from actors.registry.api import DatabaseUnavailable
from transport.client import RpcClient
from transport.errors import AuthenticationFailed, ConnectionLost, RequestTimeout, TransportError
from transport.protocol import CAST
from transport.security import ClientSecurity

__all__ = [
    "CONNECT_GRACE",
    "IN_PROGRESS_PAUSE",
    "Peer",
    "PeerState",
    "TopicClient",
    "client_security_for",
    "none_up",
    "peer_for",
    "rank_routable",
]

CONNECT_GRACE = 1.0
"""Seconds a request waits for any of its candidates to connect before it is sent
to one whose connection is not up yet (it then waits for it within its deadline)."""

IN_PROGRESS_PAUSE = (0.1, 1.0)
"""First and longest pause (seconds, doubling) before a keyed topic request that
heard OperationInProgress is repeated."""

GOES_ON = (ConnectionLost, HostFenced, DatabaseUnavailable)
"""What a request may meet on one host and then be sent to another for (`goes_on`)."""


def goes_on(error: Exception, repeatable: bool, target: str | None, scope: str | None) -> bool:
    """Whether a request that failed with `error` (one of GOES_ON) goes on to another host.

    A lost connection: if it is safe to repeat (keyed or idempotent) and not
    sent to one manager. A refusal with nothing run (HostFenced: the host lost
    the registry; DatabaseUnavailable: it could not record it): if its key is
    the topic's, so that whichever host takes it runs the one operation.
    """
    if isinstance(error, ConnectionLost):
        return repeatable and target is None
    return scope is not None


def key_scope(topic: str, target: str | None, key: str | None) -> str | None:
    """The scope of a topic request's key: the whole topic, unless sent to one manager."""
    return f"topic:{topic}" if key is not None and target is None else None


def in_progress_pause(attempt: int, deadline: float, now: float) -> float | None:
    """The pause before repeating a request in progress on another host (its
    `attempt`-th repeat), or None when the deadline leaves no room to repeat."""
    first, longest = IN_PROGRESS_PAUSE
    pause = min(first * 2**attempt, longest)
    left = deadline - now
    return None if left < pause + first else pause


def client_security_for(
    security: ClientSecurity | None, record: ServiceRecord
) -> ClientSecurity | None:
    """The security to reach `record`'s server: our keypair, its published key.

    Raises AuthenticationFailed at once when the server publishes a CURVE key
    and we have no keypair (it would only be a timeout later).
    """
    if record.server_key is None:
        return security if security is not None and security.server_public_key_file else None
    if security is None:
        raise AuthenticationFailed(
            record.endpoint or "?",
            0,
            f"{record.host}@{record.backend} at {record.endpoint} uses CURVE (its key is"
            " in the registry) and this client has no keypair: pass a client secret key",
        )
    return security.for_server(record.server_key)


class Connection(Protocol):
    """What a peer's client (RpcClient, AsyncRpcClient) offers routing."""

    @property
    def connected(self) -> bool | None: ...

    def close(self) -> None: ...


C = TypeVar("C", bound=Connection)


@dataclass
class Peer(Generic[C]):
    """One endpoint: its connection and how many of our requests wait on it."""

    client: C
    server_key: str | None
    outstanding: int = 0

    @property
    def connected(self) -> bool | None:
        return self.client.connected


def peer_for(
    peers: dict[str, Peer[C]],
    record: ServiceRecord,
    security: ClientSecurity | None,
    connect: Callable[[str, ClientSecurity | None], C],
) -> Peer[C]:
    """`record`'s peer in `peers`: the one there, or a new connection made by
    `connect(endpoint, security)`; a server whose key changed is connected anew."""
    assert record.endpoint is not None
    peer = peers.get(record.endpoint)
    if peer is not None and peer.server_key != record.server_key:  # new key: reconnect
        del peers[record.endpoint]
        peer.client.close()
        peer = None
    if peer is None:
        client = connect(record.endpoint, client_security_for(security, record))
        peer = peers[record.endpoint] = Peer(client, record.server_key)
    return peer


class PeerState(Protocol):
    """What routing needs to know of one endpoint's connection."""

    @property
    def connected(self) -> bool | None: ...

    @property
    def outstanding(self) -> int: ...


P = TypeVar("P", bound=PeerState)


def rank_routable(
    records: list[ServiceRecord],
    target: str | None,
    peer_of: Callable[[ServiceRecord], P],
    rng: random.Random,
) -> list[tuple[ServiceRecord, P]]:
    """The services of `records` a request may go to now, best first (the module's rule).

    `peer_of` gives each routable record's connection (opening it if new); one
    known disconnected is left out, connected ones come first, then those not
    known either way; among equals the fewest outstanding requests, then chance.
    """
    ranked: list[tuple[int, int, float, ServiceRecord, P]] = []
    for record in records:
        if record.endpoint is None or record.disabled or record.state == "stopped":
            continue
        if target is not None and f"{record.host}@{record.backend}" != target:
            continue
        peer = peer_of(record)
        connected = peer.connected
        if connected is False or not (record.is_up or connected):
            continue
        ranked.append((0 if connected else 1, peer.outstanding, rng.random(), record, peer))
    ranked.sort(key=lambda item: item[:3])
    return [(record, peer) for *_, record, peer in ranked]


def none_up(topic: str, target: str | None, *, lost: bool) -> TransportError:
    """NotFound: no service of the topic (or no `target`) can be routed to."""
    which = f"{target} (of topic {topic!r})" if target else f"of topic {topic!r}"
    return NotFound.from_wire(
        f"no service {which} is up in the registry (none heartbeats, or it is disabled)"
        + (", or its connection is down" if lost else ""),
        {"target": target or topic},
    )


class TopicClient:
    """Calls to the services of one topic, located through the registry (see the module)."""

    def __init__(
        self,
        registry: Registry,
        topic: str,
        *,
        security: ClientSecurity | None = None,
        timeout: float = 60.0,
        **client_options: Any,
    ) -> None:
        """`security`: this client's keypair (its server key, if any, is used only for
        rows that publish none); `client_options` go to each RpcClient (e.g.
        `heartbeat=1.0` to notice a cut link within about 3 s, `green=`)."""
        self.registry = registry
        self.topic = topic
        self.security = security
        self.timeout = timeout
        self.client_options = client_options
        self._peers: dict[str, Peer[RpcClient]] = {}
        self._last_records: list[ServiceRecord] = []
        self._lock = threading.Lock()
        self._rng = random.Random()
        self.failovers = 0
        """Requests sent again to another peer after their connection was lost."""

    # -- where to send -------------------------------------------------------------
    def records(self) -> list[ServiceRecord]:
        """The topic's services; the last ones read while the registry is unavailable."""
        try:
            records = self.registry.services(topic=self.topic)
        except DatabaseUnavailable:
            return self._last_records
        self._last_records = records
        return records

    def _peer(self, record: ServiceRecord) -> Peer[RpcClient]:
        with self._lock:
            return peer_for(self._peers, record, self.security, self._connect)

    def _connect(self, endpoint: str, security: ClientSecurity | None) -> RpcClient:
        return RpcClient(endpoint, timeout=self.timeout, security=security, **self.client_options)

    def routable(self, target: str | None = None) -> list[tuple[ServiceRecord, Peer[RpcClient]]]:
        """The services a request may go to now, best first (see the module's rule)."""

        def peer(record: ServiceRecord) -> Peer[RpcClient]:
            found = self._peer(record)
            found.client.poll_events()
            return found

        return rank_routable(self.records(), target, peer, self._rng)

    def pick(self, target: str | None = None) -> ServiceRecord:
        """An up service of the topic by the registry alone: `target` or a random one.

        Opens no connection (AsyncTopicClient uses it with clients of its own);
        `call` and `cast` route by the rule above instead.
        """
        up = [r for r in self.records() if r.is_up and r.endpoint]
        if target is not None:
            up = [r for r in up if f"{r.host}@{r.backend}" == target]
        if not up:
            raise none_up(self.topic, target, lost=False)
        return self._rng.choice(up)

    def _pick(
        self, target: str | None, lost: set[str], deadline: float | None = None
    ) -> tuple[ServiceRecord, Peer[RpcClient]]:
        choices = self._choices(target, lost)
        if choices and choices[0][1].client.connected is None:
            # None is connected yet (a new client, or only newcomers left): give the
            # connections a moment rather than send to what may be a dead endpoint.
            end = time.monotonic() + CONNECT_GRACE
            if deadline is not None:
                end = min(end, deadline)
            while time.monotonic() < end and not any(p.client.connected for _, p in choices):
                for _, peer in choices:
                    if peer.client.wait_connected(min(0.02, max(0.0, end - time.monotonic()))):
                        break
            choices = self._choices(target, lost)
        if not choices:
            raise none_up(self.topic, target, lost=bool(lost))
        return choices[0]

    def _choices(
        self, target: str | None, lost: set[str]
    ) -> list[tuple[ServiceRecord, Peer[RpcClient]]]:
        return [(r, p) for r, p in self.routable(target) if r.endpoint not in lost]

    # -- requests ------------------------------------------------------------------
    def call(
        self,
        method: str,
        args: dict[str, Any] | None = None,
        *,
        target: str | None = None,
        key: str | None = None,
        idempotent: bool = False,
        timeout: float | None = None,
        version: str | None = None,
    ) -> Any:
        """Call `method` on `target` (host@backend) or on the best service of the topic.

        With a `key` or `idempotent=True`, a call whose connection is lost is
        sent again to another live service within the same deadline.
        """
        return self._request(method, args, target, key, idempotent, timeout, version, None)

    def cast(
        self,
        method: str,
        args: dict[str, Any] | None = None,
        *,
        target: str | None = None,
        key: str | None = None,
        idempotent: bool = False,
        timeout: float | None = None,
        version: str | None = None,
    ) -> dict[str, Any] | None:
        """Cast to one service of the topic; returns once a service accepted it.

        For a journaled method the acceptance comes after the journal commit
        ({"operation": id}); with a `key`, a cast whose connection is lost
        before that is sent again to another service.
        """
        result = self._request(method, args, target, key, idempotent, timeout, version, CAST)
        return result  # type: ignore[no-any-return]

    def _request(
        self,
        method: str,
        args: dict[str, Any] | None,
        target: str | None,
        key: str | None,
        idempotent: bool,
        timeout: float | None,
        version: str | None,
        kind: str | None,
    ) -> Any:
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        repeatable = key is not None or idempotent
        scope = key_scope(self.topic, target, key)
        lost: set[str] = set()
        failure: TransportError | None = None
        repeats = 0
        while True:
            try:
                record, peer = self._pick(target, lost, deadline)
            except NotFound:
                if failure is None:
                    raise
                raise failure from None  # every peer it could go to was lost under it
            name = f"{record.host}@{record.backend}"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimeout(name, method, timeout)
            send = peer.client.cast if kind == CAST else peer.client.call
            with self._lock:
                peer.outstanding += 1
            try:
                return send(
                    name, method, args, timeout=remaining, version=version, key=key, scope=scope
                )
            except GOES_ON as exc:  # nothing ran there, or it may run again
                if not goes_on(exc, repeatable, target, scope):
                    raise
                failure = exc
                assert record.endpoint is not None
                lost.add(record.endpoint)
                self.failovers += 1
                continue
            except OperationInProgress:
                pause = in_progress_pause(repeats, deadline, time.monotonic())
                if scope is None or pause is None:
                    raise
            finally:
                with self._lock:
                    peer.outstanding -= 1
            repeats += 1
            self._sleep(pause)

    def _sleep(self, seconds: float) -> None:
        """A pause that lets the hub run when this client is green (gevent)."""
        if self.client_options.get("green"):
            import gevent

            gevent.sleep(seconds)
        else:
            time.sleep(seconds)

    def close(self) -> None:
        with self._lock:
            peers, self._peers = list(self._peers.values()), {}
        for peer in peers:
            peer.client.close()

    def __enter__(self) -> TopicClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
