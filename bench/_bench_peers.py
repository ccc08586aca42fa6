"""The peers a user would pick instead of service-actors, for bench_rpc.py.

* grpcio: unary calls through a generic handler, msgpack bytes (no protoc step);
* oslo.messaging: RPC over RabbitMQ (127.0.0.1:5672, guest/guest) on a unique
  exchange and topic, removed again at the end.

`pip install -e '.[bench]'` installs both; a peer that cannot be imported (or
whose broker cannot be reached) is skipped with a line saying why.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

RABBIT_URL = os.environ.get("BENCH_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
NAME = f"bench-rpc-{os.getpid()}"  # exchange and topic: unique to this run
GRPC_METHOD = "/bench.Echo/Echo"


def _stopper() -> Any:
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def serve_grpc(parent: int, report: Any) -> int:
    import grpc
    import msgpack

    def echo(request: Any, context: Any) -> Any:
        return request

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(
                echo, request_deserializer=msgpack.unpackb, response_serializer=msgpack.packb
            )
        },
    )
    server = grpc.server(ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    stop = _stopper()
    server.start()
    report(f"ENDPOINT 127.0.0.1:{port}")
    while not stop.wait(0.5):
        if os.getppid() != parent:
            break
    server.stop(2).wait(5)
    report('STOPPED {"clean": true, "stats": {}}')
    return 0


def _oslo_transport(name: str) -> Any:
    warnings.simplefilter("ignore")
    import oslo_messaging as om
    from oslo_config import cfg

    conf = cfg.CONF  # oslo.messaging registers some of its options there only
    conf([], project=name)
    om.set_transport_defaults(control_exchange=name)
    transport = om.get_rpc_transport(conf, url=RABBIT_URL)
    # Reply and fanout queues are named at random: let RabbitMQ drop them 1 s after use.
    conf.set_override("rabbit_transient_queues_ttl", 1, group="oslo_messaging_rabbit")
    return transport


def serve_oslo(parent: int, name: str, report: Any) -> int:
    import oslo_messaging as om

    transport = _oslo_transport(name)

    class Endpoint:
        target = om.Target(version="1.0")

        def echo(self, ctxt: Any, value: Any) -> Any:
            return value

    target = om.Target(topic=name, server="bench", exchange=name)
    server = om.get_rpc_server(transport, target, [Endpoint()], executor="threading")
    stop = _stopper()
    server.start()
    report("ENDPOINT " + name)
    while not stop.wait(0.5):
        if os.getppid() != parent:
            break
    server.stop()
    server.wait()
    transport.cleanup()
    report('STOPPED {"clean": true, "stats": {}}')
    return 0


def grpc_rounds(endpoint: str, pipeline: int, check: Any) -> tuple[Any, Any, Any]:
    import grpc
    import msgpack

    channel = grpc.insecure_channel(endpoint)
    stub = channel.unary_unary(
        GRPC_METHOD, request_serializer=msgpack.packb, response_deserializer=msgpack.unpackb
    )

    def sequential(value: int) -> int:
        check(value, stub({"value": value}, timeout=10)["value"])
        return 1

    def pipelined(value: int) -> int:
        futures = [stub.future({"value": value + i}, timeout=10) for i in range(pipeline)]
        for i, future in enumerate(futures):
            check(value + i, future.result()["value"])
        return pipeline

    return sequential, pipelined, channel.close


def oslo_rounds(name: str, pipeline: int, check: Any) -> tuple[Any, Any, Any]:
    import oslo_messaging as om

    transport = _oslo_transport(name)
    client = om.get_rpc_client(transport, om.Target(topic=name, exchange=name, version="1.0"))
    client = client.prepare(timeout=10)
    pool = ThreadPoolExecutor(max_workers=pipeline)

    def sequential(value: int) -> int:
        check(value, client.call({}, "echo", value=value))
        return 1

    def pipelined(value: int) -> int:
        futures = [pool.submit(client.call, {}, "echo", value=value + i) for i in range(pipeline)]
        for i, future in enumerate(futures):
            check(value + i, future.result())
        return pipeline

    def close() -> None:
        pool.shutdown()
        transport.cleanup()

    return sequential, pipelined, close


def remove_oslo_leftovers(name: str) -> None:
    """Delete the exchanges and queues this run made (the named ones; the random
    ones expire by themselves a second after their last use)."""
    import kombu

    url = RABBIT_URL.replace("rabbit://", "amqp://", 1)
    with kombu.Connection(url, connect_timeout=5) as conn:
        channel = conn.channel()
        for queue in (name, f"{name}.bench", f"{name}_fanout"):
            try:
                channel.queue_delete(queue)
            except Exception:  # gone already
                channel = conn.channel()
        for exchange in (name, f"{name}_fanout"):
            try:
                channel.exchange_delete(exchange)
            except Exception:
                channel = conn.channel()


def peer_missing(kind: str) -> str | None:
    """Why a peer cannot run here, or None."""
    try:
        if kind == "grpc":
            import grpc  # noqa: F401
            import msgpack  # noqa: F401
        else:
            warnings.simplefilter("ignore")
            import kombu
            import oslo_messaging  # noqa: F401

            url = RABBIT_URL.replace("rabbit://", "amqp://", 1)
            with kombu.Connection(url, connect_timeout=3) as conn:
                conn.ensure_connection(max_retries=1)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


if __name__ == "__main__":  # pragma: no cover - used through bench_rpc.py
    sys.exit("run bench/bench_rpc.py")
