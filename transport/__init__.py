"""The transport layer: wire protocol, ZeroMQ server and client. Knows no actors.

Only the errors are imported eagerly (they are light, and every user needs
them); the rest loads on first use, so that a process that needs one client
(actorsctl) does not pay for asyncio, the server and the security module.
"""

from typing import TYPE_CHECKING, Any

from transport.errors import (
    AuthenticationFailed,
    ConnectionClosed,
    ConnectionLost,
    MessageTooLarge,
    ProtocolError,
    RemoteError,
    RequestTimeout,
    TransportError,
    register_error,
)

if TYPE_CHECKING:
    from transport.aio import AsyncRpcClient, async_fanout
    from transport.client import ClientFuture, RpcClient, fanout
    from transport.dispatcher import Dispatcher, ReplyFuture, Request
    from transport.security import ClientSecurity, ServerSecurity, generate_keypair
    from transport.server import BindError, InsecureBind, RpcServer

_LAZY = {
    "AsyncRpcClient": "transport.aio",
    "async_fanout": "transport.aio",
    "ClientFuture": "transport.client",
    "RpcClient": "transport.client",
    "fanout": "transport.client",
    "Dispatcher": "transport.dispatcher",
    "ReplyFuture": "transport.dispatcher",
    "Request": "transport.dispatcher",
    "ClientSecurity": "transport.security",
    "ServerSecurity": "transport.security",
    "generate_keypair": "transport.security",
    "BindError": "transport.server",
    "InsecureBind": "transport.server",
    "RpcServer": "transport.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'transport' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AsyncRpcClient",
    "AuthenticationFailed",
    "BindError",
    "ClientFuture",
    "ClientSecurity",
    "ConnectionClosed",
    "ConnectionLost",
    "Dispatcher",
    "InsecureBind",
    "MessageTooLarge",
    "ProtocolError",
    "RemoteError",
    "ReplyFuture",
    "Request",
    "RequestTimeout",
    "RpcClient",
    "RpcServer",
    "ServerSecurity",
    "TransportError",
    "async_fanout",
    "fanout",
    "generate_keypair",
    "register_error",
]
