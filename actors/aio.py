"""asyncio front ends: a service embedded in an asyncio app, and calls by topic.

    async with AsyncService(config) as service:
        share = await service.call("local", "get_share", {"share_id": "projects"})

`AsyncService` runs a `Service` on the threading runtime (its actors are
threads; the event loop is never blocked by them) and bridges each request's
future to the event loop: the future's completion callback hands the outcome
to the loop with `call_soon_threadsafe`, so nothing polls. Starting and
stopping (which wait for actors) run in a worker thread.

`AsyncTopicClient` is `TopicClient` for coroutines: the registry lookup runs in
a worker thread, bounded in number and by a deadline; the calls go through
`AsyncRpcClient`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from actors.client import TopicClient
from actors.config import ServiceConfig, load_config
from actors.errors import DeadlineExceeded, NotFound
from actors.registry import Registry, ServiceRecord
from actors.runtime import ActorFuture, Clock
from actors.service import Service
from transport.aio import AsyncRpcClient

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
    """Calls to the up services of one topic, located through the registry, from asyncio."""

    def __init__(
        self,
        registry: Registry,
        topic: str,
        *,
        lookup_timeout: float = 10.0,
        max_lookups: int = 4,
        **client_options: Any,
    ) -> None:
        """`client_options` go to each `AsyncRpcClient` (timeout, security, ...);
        at most `max_lookups` registry lookups run at once, each within
        `lookup_timeout` seconds."""
        self.topic = topic
        self.lookup_timeout = lookup_timeout
        self.client_options = client_options
        self._picker = TopicClient(registry, topic)  # its choice of service; never its calls
        self._lookups = asyncio.Semaphore(max_lookups)
        self._clients: dict[str, AsyncRpcClient] = {}

    async def pick(self, target: str | None = None) -> ServiceRecord:
        """An up service of the topic: `target` (host@backend) or any of them.

        Raises NotFound if none is up, DeadlineExceeded if the registry did not
        answer within `lookup_timeout`.
        """
        try:
            async with asyncio.timeout(self.lookup_timeout):
                async with self._lookups:
                    return await asyncio.to_thread(self._picker.pick, target)
        except TimeoutError:
            raise DeadlineExceeded(
                "registry", f"services of topic {self.topic!r}", self.lookup_timeout
            ) from None

    def _client(self, endpoint: str) -> AsyncRpcClient:
        client = self._clients.get(endpoint)
        if client is None:
            client = self._clients[endpoint] = AsyncRpcClient(endpoint, **self.client_options)
        return client

    async def call(
        self,
        method: str,
        args: dict[str, Any] | None = None,
        *,
        target: str | None = None,
        **call_options: Any,
    ) -> Any:
        """Call `method` on `target` (host@backend) or on any up service of the topic."""
        name, client = await self._route(target)
        return await client.call(name, method, args, **call_options)

    async def cast(
        self,
        method: str,
        args: dict[str, Any] | None = None,
        *,
        target: str | None = None,
        **call_options: Any,
    ) -> dict[str, Any] | None:
        """Cast `method` to `target` (host@backend) or to any up service of the topic."""
        name, client = await self._route(target)
        return await client.cast(name, method, args, **call_options)

    async def _route(self, target: str | None) -> tuple[str, AsyncRpcClient]:
        record = await self.pick(target)
        if record.endpoint is None:  # pick() only returns services with an endpoint
            raise NotFound(target or self.topic)
        return f"{record.host}@{record.backend}", self._client(record.endpoint)

    async def aclose(self) -> None:
        """Close every connection (the registry is the caller's to close)."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
