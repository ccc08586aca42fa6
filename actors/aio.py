"""asyncio front ends: a service embedded in an asyncio app, and calls by topic.

    async with AsyncService(config) as service:
        share = await service.call("local", "get_share", {"share_id": "projects"})

`AsyncService` runs a `Service` on the threading runtime (its actors are
threads; the event loop is never blocked by them) and bridges each request's
future to the event loop: the future's completion callback hands the outcome
to the loop with `call_soon_threadsafe`, so nothing polls. Starting and
stopping (which wait for actors) run in a worker thread.

`AsyncTopicClient` is `TopicClient` for coroutines, with the same routing and
failover rules (`actors.client`): the registry lookup runs in a worker thread,
bounded in number and by a deadline; the calls go through `AsyncRpcClient`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from actors.client import (
    CONNECT_GRACE,
    GOES_ON,
    Peer,
    TopicClient,
    goes_on,
    in_progress_pause,
    key_scope,
    none_up,
    peer_for,
    rank_routable,
)
from actors.config import ServiceConfig, load_config
from actors.errors import DeadlineExceeded, NotFound, OperationInProgress
from actors.registry import Registry, ServiceRecord
from actors.runtime import ActorFuture, Clock
from actors.service import Service
from transport.aio import AsyncRpcClient
from transport.errors import RequestTimeout, TransportError
from transport.protocol import CALL, CAST
from transport.security import ClientSecurity

__all__ = ["AsyncService", "AsyncTopicClient", "wrap_future"]

T = TypeVar("T")


def wrap_future(
    future: ActorFuture[T], loop: asyncio.AbstractEventLoop | None = None
) -> asyncio.Future[T]:
    """An asyncio future that completes as `future` does, in the event loop's thread.

    Cancelling the asyncio future does not cancel the work: its outcome is
    dropped when it comes.
    """
    loop = asyncio.get_running_loop() if loop is None else loop
    waiter: asyncio.Future[T] = loop.create_future()

    def on_done(done: ActorFuture[T]) -> None:  # in whichever thread completed `future`
        try:
            loop.call_soon_threadsafe(_settle, waiter, done)
        except RuntimeError:  # the loop is closed: nobody waits for this any more
            pass

    future.add_done_callback(on_done)
    return waiter


def _settle(waiter: asyncio.Future[T], done: ActorFuture[T]) -> None:
    if waiter.done():  # cancelled, or its deadline passed
        return
    try:
        value = done.get(timeout=0)
    except BaseException as exc:
        waiter.set_exception(exc)
    else:
        waiter.set_result(value)


class AsyncService:
    """A `Service` on the threading runtime, started, stopped and called from asyncio."""

    def __init__(
        self,
        config: ServiceConfig | None = None,
        *,
        config_file: str | Path | None = None,
        clock: Clock | None = None,
    ) -> None:
        """As `Service(...)`, always on the threading runtime (gevent's hub cannot
        share a thread with an asyncio event loop)."""
        self.service = Service(config, runtime="threading", clock=clock, config_file=config_file)

    @classmethod
    def from_file(cls, path: str | Path) -> AsyncService:
        """A service configured from a TOML file (plus ACTORS_* variables)."""
        return cls(load_config(path), config_file=path)

    async def start(self, timeout: float | None = None) -> Self:
        """`Service.start` in a worker thread: every backend answered or failed."""
        await asyncio.to_thread(self.service.start, timeout)
        return self

    async def stop(self, timeout: float | None = None) -> bool:
        """`Service.stop` in a worker thread; True if every actor stopped in time."""
        return await asyncio.to_thread(self.service.stop, timeout)

    async def __aenter__(self) -> Self:
        return await self.start() if self.service.system is None else self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def call(
        self,
        target: str,
        method: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        version: str | None = None,
        key: str | None = None,
    ) -> Any:
        """As `Service.call`, awaited: the result, or DeadlineExceeded after `timeout`.

        Cancelling the await does not stop the work; its outcome is dropped.
        """
        service = self.service
        timeout = service.config.default_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        future = service.ask(target, method, args, timeout=timeout, version=version, key=key)
        waiter = wrap_future(future, loop)
        timer = loop.call_later(timeout, self._expire, waiter, target, method, timeout)
        try:
            return await waiter
        finally:
            timer.cancel()

    def _expire(self, waiter: asyncio.Future[Any], target: str, method: str, t: float) -> None:
        if waiter.done():
            return
        try:
            name = self.service.route(target)  # named as Service.call names it
        except Exception:
            name = target
        waiter.set_exception(DeadlineExceeded(name, method, t))

    async def cast(
        self,
        target: str,
        method: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        version: str | None = None,
        key: str | None = None,
    ) -> str | None:
        """As `Service.cast` (the operation's id for a journaled method, once committed).

        In a worker thread: a journaled cast waits for its commit.
        """
        return await asyncio.to_thread(
            self.service.cast, target, method, args, version=version, key=key, timeout=timeout
        )


class AsyncTopicClient:
    """`TopicClient` for coroutines: the same routing and failover rules (see
    `actors.client`), with the registry read in a worker thread."""

    def __init__(
        self,
        registry: Registry,
        topic: str,
        *,
        security: ClientSecurity | None = None,
        timeout: float = 60.0,
        lookup_timeout: float = 10.0,
        max_lookups: int = 4,
        **client_options: Any,
    ) -> None:
        """`security`: this client's keypair (each server's key comes from its
        registry row); `client_options` go to each `AsyncRpcClient` (heartbeat,
        limits, ...); at most `max_lookups` registry reads run at once, each
        within `lookup_timeout` seconds."""
        self.topic = topic
        self.security = security
        self.timeout = timeout
        self.lookup_timeout = lookup_timeout
        self.client_options = client_options
        self._directory = TopicClient(registry, topic)  # its registry reads; never its calls
        self._lookups = asyncio.Semaphore(max_lookups)
        self._peers: dict[str, Peer[AsyncRpcClient]] = {}
        self._rng = random.Random()
        self.failovers = 0
        """Requests sent again to another peer after their connection was lost."""

    async def _lookup(self, fn: Callable[..., T], *args: Any) -> T:
        """A blocking registry read in a worker thread, bounded in number and time."""
        try:
            async with asyncio.timeout(self.lookup_timeout):
                async with self._lookups:
                    return await asyncio.to_thread(fn, *args)
        except TimeoutError:
            raise DeadlineExceeded(
                "registry", f"services of topic {self.topic!r}", self.lookup_timeout
            ) from None

    async def pick(self, target: str | None = None) -> ServiceRecord:
        """An up service of the topic by the registry alone: `target` (host@backend)
        or a random one. Raises NotFound if none is up, DeadlineExceeded if the
        registry did not answer within `lookup_timeout`."""
        return await self._lookup(self._directory.pick, target)

    async def routable(
        self, target: str | None = None
    ) -> list[tuple[ServiceRecord, Peer[AsyncRpcClient]]]:
        """The services a request may go to now, best first (`actors.client`'s rule)."""
        records = await self._lookup(self._directory.records)
        return rank_routable(records, target, self._peer, self._rng)

    def _peer(self, record: ServiceRecord) -> Peer[AsyncRpcClient]:
        return peer_for(self._peers, record, self.security, self._connect)

    def _connect(self, endpoint: str, security: ClientSecurity | None) -> AsyncRpcClient:
        return AsyncRpcClient(
            endpoint, timeout=self.timeout, security=security, **self.client_options
        )

    async def call(
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
        return await self._request(CALL, method, args, target, key, idempotent, timeout, version)

    async def cast(
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
        """Cast to one service of the topic; returns once a service accepted it
        (for a journaled method after its journal commit: {"operation": id})."""
        result = await self._request(CAST, method, args, target, key, idempotent, timeout, version)
        return result  # type: ignore[no-any-return]

    async def _request(
        self,
        kind: str,
        method: str,
        args: dict[str, Any] | None,
        target: str | None,
        key: str | None,
        idempotent: bool,
        timeout: float | None,
        version: str | None,
    ) -> Any:
        loop = asyncio.get_running_loop()
        timeout = self.timeout if timeout is None else timeout
        deadline = loop.time() + timeout
        repeatable = key is not None or idempotent
        scope = key_scope(self.topic, target, key)
        lost: set[str] = set()
        failure: TransportError | None = None
        repeats = 0
        while True:
            try:
                record, peer = await self._pick(target, lost, deadline)
            except NotFound:
                if failure is None:
                    raise
                raise failure from None  # every peer it could go to was lost under it
            name = f"{record.host}@{record.backend}"
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise RequestTimeout(name, method, timeout)
            send = peer.client.cast if kind == CAST else peer.client.call
            peer.outstanding += 1
            try:
                return await send(
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
                pause = in_progress_pause(repeats, deadline, loop.time())
                if scope is None or pause is None:
                    raise
            finally:
                peer.outstanding -= 1
            repeats += 1
            await asyncio.sleep(pause)

    async def _pick(
        self, target: str | None, lost: set[str], deadline: float
    ) -> tuple[ServiceRecord, Peer[AsyncRpcClient]]:
        choices = [c for c in await self.routable(target) if c[0].endpoint not in lost]
        if choices and choices[0][1].connected is None:
            # None is connected yet: give the connections a moment rather than
            # send to what may be a dead endpoint (as TopicClient does).
            grace = min(CONNECT_GRACE, deadline - asyncio.get_running_loop().time())
            await _any_connects([peer.client for _, peer in choices], grace)
            choices = [c for c in await self.routable(target) if c[0].endpoint not in lost]
        if not choices:
            raise none_up(self.topic, target, lost=bool(lost))
        return choices[0]

    async def aclose(self) -> None:
        """Close every connection (the registry is the caller's to close)."""
        peers, self._peers = self._peers, {}
        for peer in peers.values():
            await peer.client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _any_connects(clients: list[AsyncRpcClient], grace: float) -> None:
    """Return once any of `clients` is connected, or after `grace` seconds."""
    waits = {asyncio.ensure_future(client.wait_connected(grace)) for client in clients}
    try:
        while waits:
            done, waits = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if any(wait.result() for wait in done):
                return
    finally:
        for wait in waits:
            wait.cancel()
