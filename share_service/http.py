"""An HTTP front door for the share service: aiohttp in front of `actorsd`.

    python -m share_service.http [--endpoint tcp://127.0.0.1:5555]
                                         [--backend local] [--port 8080]

The way manila-api stands in front of manila-share: an asyncio web app that
turns HTTP requests into RPC calls over one `AsyncRpcClient` connection (many
requests in flight on it at once) and the service's typed errors into HTTP
status codes. It talks to the share service only by method name over RPC
(and knows its error types, which it imports).

    GET    /shares[?limit=N&marker=ID]  list_shares     200
    POST   /shares  {"share_id", "size_gb", "name"?}    create_share  201
    GET    /shares/{id}                 get_share       200
    DELETE /shares/{id}                 delete_share    200

An `Idempotency-Key` header on POST or DELETE is passed on as the request's
idempotency key: a retry with the same key gets the first outcome. Errors are
JSON `{"error": {"type", "message", "retryable"}}` with 404 (not found), 400
(bad arguments), 409 (exists), 413 (over quota), 503 with Retry-After (any
retryable error: busy, a deadline, the daemon away) or 500.

Needs aiohttp (`pip install service-actors[examples]`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

import share_service.errors  # noqa: F401  (registers the service's errors: they arrive typed)
from transport.aio import AsyncRpcClient
from transport.errors import TransportError
from transport.security import ClientSecurity

__all__ = ["Caller", "make_app", "serve", "status_for"]

log = logging.getLogger(__name__)

RETRY_AFTER = "1"
"""Seconds a client is told to wait before retrying a retryable error."""


class Caller(Protocol):
    """What the app calls through: `AsyncRpcClient`, or `actors.aio.AsyncService`."""

    async def call(
        self,
        target: str,
        method: str,
        args: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        key: str | None = None,
    ) -> Any: ...


def wire_type(error: TransportError) -> str:
    """The error's type as the service named it (a type this process does not
    know arrives as RemoteError carrying the name)."""
    name = error.details.get("type_name")
    return name if isinstance(name, str) else type(error).__name__


def status_for(error: TransportError) -> int:
    """The HTTP status for an error of the service or of the transport."""
    name = wire_type(error).rsplit(".", 1)[-1]
    if name.endswith("NotFound"):  # NotFound, ShareNotFound, SnapshotNotFound
        return 404
    if name == "InvalidArguments":
        return 400
    if name.endswith("Exists"):
        return 409
    if name == "QuotaExceeded":
        return 413
    if error.retryable:
        return 503
    return 500


def error_response(error: TransportError) -> web.Response:
    status = status_for(error)
    body = {
        "error": {
            "type": wire_type(error),
            "message": error.message,
            "retryable": error.retryable,
        }
    }
    headers = {"Retry-After": RETRY_AFTER} if status == 503 else None
    return web.json_response(body, status=status, headers=headers)


def bad_request(message: str) -> web.Response:
    body = {"error": {"type": "BadRequest", "message": message, "retryable": False}}
    return web.json_response(body, status=400)


def make_app(caller: Caller, backend: str = "local", *, timeout: float = 30.0) -> web.Application:
    """The web app: each route one RPC call to `backend`, each within `timeout` seconds."""

    async def call(method: str, args: dict[str, Any], key: str | None = None) -> Any:
        return await caller.call(backend, method, args, timeout=timeout, key=key)

    async def list_shares(request: web.Request) -> web.Response:
        args: dict[str, Any] = {}
        if "limit" in request.query:
            try:
                args["limit"] = int(request.query["limit"])
            except ValueError:
                return bad_request("limit must be an integer")
        if "marker" in request.query:
            args["marker"] = request.query["marker"]
        return web.json_response(await call("list_shares", args))

    async def create_share(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return bad_request("the body must be a JSON object")
        if not isinstance(body, dict):
            return bad_request("the body must be a JSON object")
        share = await call("create_share", body, request.headers.get("Idempotency-Key"))
        location = f"/shares/{share['id']}" if isinstance(share, dict) and "id" in share else None
        headers = {"Location": location} if location else None
        return web.json_response(share, status=201, headers=headers)

    async def get_share(request: web.Request) -> web.Response:
        return web.json_response(await call("get_share", {"share_id": request.match_info["id"]}))

    async def delete_share(request: web.Request) -> web.Response:
        args = {"share_id": request.match_info["id"]}
        key = request.headers.get("Idempotency-Key")
        return web.json_response(await call("delete_share", args, key))

    @web.middleware
    async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except TransportError as exc:
            return error_response(exc)
        return response

    app = web.Application(middlewares=[errors])
    app.add_routes(
        [
            web.get("/shares", list_shares),
            web.post("/shares", create_share),
            web.get("/shares/{id}", get_share),
            web.delete("/shares/{id}", delete_share),
        ]
    )
    return app


async def serve(
    caller: Caller,
    *,
    backend: str,
    host: str,
    port: int,
    timeout: float,
    stop: asyncio.Event,
) -> None:
    """Serve HTTP on host:port until `stop` is set; prints where it listens."""
    runner = web.AppRunner(make_app(caller, backend, timeout=timeout), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]  # the port, when asked for any free one (0)
        print(f"share front door on http://{host}:{bound}/shares", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


async def amain(args: argparse.Namespace) -> int:
    security = None
    if args.client_key or args.server_key:
        if not (args.client_key and args.server_key):
            print("--client-key and --server-key go together", file=sys.stderr)
            return 2
        security = ClientSecurity(Path(args.client_key), Path(args.server_key))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncRpcClient(args.endpoint, timeout=args.timeout, security=security) as client:
        await serve(
            client,
            backend=args.backend,
            host=args.host,
            port=args.port,
            timeout=args.timeout,
            stop=stop,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--endpoint",
        default=os.environ.get("ACTORS_ENDPOINT", "tcp://127.0.0.1:5555"),
        help="where actorsd listens (default: $ACTORS_ENDPOINT or tcp://127.0.0.1:5555)",
    )
    parser.add_argument("--backend", default="local", help="the share backend to call")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP address to bind")
    parser.add_argument("--port", type=int, default=8080, help="HTTP port (0: any free one)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per RPC call")
    parser.add_argument("--client-key", help="CURVE: this client's secret key file")
    parser.add_argument("--server-key", help="CURVE: the server's public key file")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
