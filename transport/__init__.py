"""The transport layer (ZeroMQ wire protocol, server, client). Knows no actors.

For now only the dispatcher interface that the ServiceActor side implements;
the ZeroMQ server and client land with the transport issue.
"""

from transport.dispatcher import Dispatcher, Request

__all__ = ["Dispatcher", "Request"]
