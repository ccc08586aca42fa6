"""`TopicClient`: call services found in the registry, by topic.

A client names a topic, and either any up service of it or one `host@backend`;
the registry says where that service listens. Connections are reused.
"""

from __future__ import annotations

import random
from typing import Any

from actors.errors import NotFound
from actors.registry import Registry, ServiceRecord
from transport.client import RpcClient

__all__ = ["TopicClient"]


class TopicClient:
    """Calls to the up services of one topic, located through the registry."""

    def __init__(self, registry: Registry, topic: str, **client_options: Any) -> None:
        self.registry = registry
        self.topic = topic
        self.client_options = client_options
        self._clients: dict[str, RpcClient] = {}
        self._rng = random.Random()

    def pick(self, target: str | None = None) -> ServiceRecord:
        """An up service of the topic: `target` (host@backend) or any of them."""
        up = [r for r in self.registry.services(topic=self.topic) if r.is_up and r.endpoint]
        if target is not None:
            up = [r for r in up if f"{r.host}@{r.backend}" == target]
        if not up:
            which = f"{target} (of topic {self.topic!r})" if target else f"of topic {self.topic!r}"
            raise NotFound.from_wire(
                f"no service {which} is up in the registry (none heartbeats, or it is disabled)",
                {"target": target or self.topic},
            )
        return self._rng.choice(up)

    def _client(self, endpoint: str) -> RpcClient:
        client = self._clients.get(endpoint)
        if client is None:
            client = self._clients[endpoint] = RpcClient(endpoint, **self.client_options)
        return client

    def call(
        self,
        method: str,
        args: dict[str, Any] | None = None,
        *,
        target: str | None = None,
        **call_options: Any,
    ) -> Any:
        """Call `method` on `target` (host@backend) or on any up service of the topic."""
        record = self.pick(target)
        assert record.endpoint is not None
        name = f"{record.host}@{record.backend}"
        return self._client(record.endpoint).call(name, method, args, **call_options)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def __enter__(self) -> TopicClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
