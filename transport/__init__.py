"""The transport layer: wire protocol, ZeroMQ server and client. Knows no actors."""

from transport.aio import AsyncRpcClient, async_fanout
from transport.client import ClientFuture, RpcClient, fanout
from transport.dispatcher import Dispatcher, ReplyFuture, Request
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
from transport.security import ClientSecurity, ServerSecurity, generate_keypair
from transport.server import BindError, InsecureBind, RpcServer

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
