"""asyncio round trips per second: AsyncRpcClient against raw `zmq.asyncio`.

    python bench/bench_async.py [--seconds S] [--repeats N] [--json]

Measures, in one run, request/reply round trips over tcp on 127.0.0.1 from an
asyncio event loop in this process to a server in a separate process (servers
and measuring as in `bench_rpc.py`):

* baseline: a raw `zmq.asyncio` DEALER sending msgpack-encoded small maps to a
  raw pyzmq ROUTER echo server (`await send` / `await recv`);
* `AsyncRpcClient` against a raw ROUTER that answers each request with a reply
  envelope (msgpack decode, pack the reply): the client's own cost, with a
  server about as cheap as the echo;
* `AsyncRpcClient` against service-actors servers (the echo backend of
  `bench_ask.py`) on the gevent and on the threading runtime: end to end.

Each is measured sequentially (one `await call` at a time), with 100 in
flight (100 `start_call` futures, then each awaited: the raw client's shape)
and with 100 tasks (100 `call`s gathered: a task each, as an app would). Every reply is checked. The
ratios put each figure next to the raw client's; the target (#23) is >= 0.5x
raw for the client against the reply server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_rpc import (  # noqa: E402  (after the path fix above)
    BACKEND,
    CALL_TIMEOUT,
    PIPELINE,
    Result,
    ServerProcess,
    _check,
    process_cpu,
)

AsyncBatch = Callable[[int], Awaitable[int]]


# -- clients ----------------------------------------------------------------------------------
def client_rounds(client: Any) -> tuple[AsyncBatch, AsyncBatch, AsyncBatch]:
    """Sequential; 100 in flight with `start_call` futures; 100 tasks each awaiting `call`."""
    call, start_call = client.call, client.start_call

    async def sequential(value: int) -> int:
        _check(value, await call(BACKEND, "echo", {"value": value}))
        return 1

    async def pipelined(value: int) -> int:
        futures = [start_call(BACKEND, "echo", {"value": value + i}) for i in range(PIPELINE)]
        for i, future in enumerate(futures):
            _check(value + i, await future)
        return PIPELINE

    async def tasks(value: int) -> int:
        results = await asyncio.gather(
            *(call(BACKEND, "echo", {"value": value + i}) for i in range(PIPELINE))
        )
        for i, got in enumerate(results):
            _check(value + i, got)
        return PIPELINE

    return sequential, pipelined, tasks


def raw_rounds(sock: Any) -> tuple[AsyncBatch, AsyncBatch]:
    import msgpack

    packb, unpackb = msgpack.packb, msgpack.unpackb
    send, recv = sock.send, sock.recv

    def request(value: int) -> bytes:
        body: bytes = packb(
            {"id": value, "target": BACKEND, "method": "echo", "args": {"value": value}}
        )
        return body

    async def sequential(value: int) -> int:
        await send(request(value))
        _check(value, unpackb(await recv())["args"]["value"])
        return 1

    async def pipelined(value: int) -> int:
        for i in range(PIPELINE):
            await send(request(value + i))
        expected = set(range(value, value + PIPELINE))
        for _ in range(PIPELINE):
            reply = unpackb(await recv())
            if reply["args"]["value"] != reply["id"] or reply["id"] not in expected:
                raise AssertionError(f"unexpected echo {reply!r}")
            expected.discard(reply["id"])
        return PIPELINE

    return sequential, pipelined


# -- measuring --------------------------------------------------------------------------------
class AsyncBench:
    def __init__(self, seconds: float, repeats: int, warmup: float, quiet: bool) -> None:
        self.seconds, self.repeats, self.warmup, self.quiet = seconds, repeats, warmup, quiet
        self.results: dict[str, Result] = {}
        self.servers: dict[str, dict[str, Any]] = {}
        self._next_value = 0

    async def _once(self, batch: AsyncBatch, seconds: float) -> tuple[int, float]:
        clock = time.perf_counter
        start = clock()
        end = start + seconds
        n = 0
        while clock() < end:
            n += await batch(self._next_value + n)
        self._next_value += n
        return n, clock() - start

    async def measure(
        self, key: str, label: str, batch: AsyncBatch, in_flight: int, server_pid: int
    ) -> None:
        await self._once(batch, self.warmup)
        result = Result(key, label, in_flight)
        for _ in range(self.repeats):
            client0, server0 = process_cpu(), process_cpu(server_pid)
            n, elapsed = await self._once(batch, self.seconds)
            client1, server1 = process_cpu(), process_cpu(server_pid)
            result.runs.append(n / elapsed)
            if client0 is not None and client1 is not None:
                result.client_cpu.append((client1 - client0) / n)
            if server0 is not None and server1 is not None:
                result.server_cpu.append((server1 - server0) / n)
        self.results[key] = result
        if not self.quiet:
            print(f"  {label:<52} {result.ops:>12,.0f} ops/s", file=sys.stderr, flush=True)


async def bench_raw(bench: AsyncBench) -> None:
    import zmq
    import zmq.asyncio

    server = ServerProcess("raw")
    try:
        context = zmq.asyncio.Context()
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(server.endpoint)
        try:
            sequential, pipelined = raw_rounds(sock)
            pid = server.proc.pid
            label = "raw zmq.asyncio DEALER -> ROUTER echo"
            await bench.measure("raw_seq", f"{label}, sequential", sequential, 1, pid)
            await bench.measure(
                "raw_pipe", f"{label}, {PIPELINE} in flight", pipelined, PIPELINE, pid
            )
        finally:
            sock.close()
            context.term()
    except BaseException:
        server.kill()
        raise
    server.stop()
    bench.servers["raw"] = server.final


async def bench_client(bench: AsyncBench, kind: str, label: str) -> None:
    from transport.aio import AsyncRpcClient

    server = ServerProcess(kind)
    try:
        async with AsyncRpcClient(server.endpoint, timeout=CALL_TIMEOUT) as client:
            sequential, pipelined, tasks = client_rounds(client)
            pid = server.proc.pid
            await bench.measure(f"{kind}_seq", f"{label}, sequential", sequential, 1, pid)
            await bench.measure(
                f"{kind}_pipe", f"{label}, {PIPELINE} in flight", pipelined, PIPELINE, pid
            )
            await bench.measure(f"{kind}_tasks", f"{label}, {PIPELINE} tasks", tasks, PIPELINE, pid)
            if client.stats:
                raise AssertionError(f"client saw bad or late replies: {dict(client.stats)}")
    except BaseException:
        server.kill()
        raise
    server.stop()
    bench.servers[kind] = server.final


async def run_all(bench: AsyncBench) -> None:
    await bench_raw(bench)
    await bench_client(bench, "reply", "AsyncRpcClient -> raw ROUTER reply")
    await bench_client(bench, "gevent", "AsyncRpcClient -> service-actors gevent")
    await bench_client(bench, "threading", "AsyncRpcClient -> service-actors threading")


RATIOS = [
    # key, numerator, denominator, target
    ("client_vs_raw_seq", "reply_seq", "raw_seq", 0.5),
    ("client_vs_raw_pipe", "reply_pipe", "raw_pipe", 0.5),
    ("client_tasks_vs_raw_pipe", "reply_tasks", "raw_pipe", None),
    ("gevent_vs_raw_seq", "gevent_seq", "raw_seq", None),
    ("gevent_vs_raw_pipe", "gevent_pipe", "raw_pipe", None),
    ("threading_vs_raw_seq", "threading_seq", "raw_seq", None),
    ("threading_vs_raw_pipe", "threading_pipe", "raw_pipe", None),
]


def ratios(results: dict[str, Result]) -> list[dict[str, Any]]:
    return [
        {
            "key": key,
            "ratio": round(results[num].ops / results[den].ops, 3),
            "target": target,
            "numerator": results[num].label,
            "denominator": results[den].label,
        }
        for key, num, den, target in RATIOS
    ]


def report(bench: AsyncBench, as_json: bool) -> None:
    import platform

    import zmq

    rows = [r.as_dict() | {"key": k} for k, r in bench.results.items()]
    ratio_rows = ratios(bench.results)
    meta = {
        "python": platform.python_version(),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "seconds": bench.seconds,
        "repeats": bench.repeats,
        "pipeline": PIPELINE,
        "servers": bench.servers,
    }
    if as_json:
        print(json.dumps({"meta": meta, "results": rows, "ratios": ratio_rows}, indent=2))
        return
    print(
        f"python {meta['python']}, pyzmq {meta['pyzmq']} (libzmq {meta['libzmq']}), "
        f"{meta['cpus']} cpus, median of {bench.repeats} x {bench.seconds:g}s"
    )
    print(f"{'scenario':<56} {'ops/s':>10} {'us/op':>8} {'client cpu':>10} {'server cpu':>10}")
    for row in rows:
        cpu = [
            "-" if row[k] is None else f"{row[k]:.1f}"
            for k in ("client_cpu_us_per_op", "server_cpu_us_per_op")
        ]
        print(
            f"{row['label']:<56} {row['ops_per_s']:>10,.0f} {row['us_per_op']:>8.1f} "
            f"{cpu[0]:>10} {cpu[1]:>10}"
        )
    print()
    for r in ratio_rows:
        target = f"(target >= {r['target']})" if r["target"] is not None else ""
        print(f"{r['numerator']} / {r['denominator']}: {r['ratio']:.2f}x {target}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per scenario")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warmup = args.warmup if args.warmup is not None else min(0.5, args.seconds / 2)
    bench = AsyncBench(args.seconds, args.repeats, warmup, quiet=args.json)
    asyncio.run(run_all(bench))
    report(bench, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
