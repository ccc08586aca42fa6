"""Network round trips per second: service-actors over tcp against raw pyzmq.

    python bench/bench_rpc.py [--seconds S] [--repeats N] [--json] [--no-peers]
    python bench/bench_rpc.py --count gevent|threading|client [--sequential] [--ops N]

Measures, in one run, request/reply round trips over tcp on 127.0.0.1 between
this process (the client) and a server in a separate process:

* service-actors on the gevent runtime: a server process like `actorsd`
  (`gevent.monkey.patch_all()` before anything else is imported, then
  `Service(config).start()` with the echo backend of `bench_ask.py`, served on
  tcp://127.0.0.1:0);
* the same server on the threading runtime (no monkey-patching);
* our client alone: a raw pyzmq ROUTER that answers each request with a reply
  envelope (no framework on the server side), to tell the client's share of
  the gap from the server's;
* baseline: a raw pyzmq ROUTER echo server (a `recv_multipart`/`send_multipart`
  loop) and a raw DEALER client sending msgpack-encoded small maps.

The service-actors client is `RpcClient(endpoint, green=False)` in this process,
not monkey-patched: sequential `call("e", "echo", {"value": i})`, and pipelined,
100 requests in flight (`call_async` x 100, then wait for all 100 results). The
raw client does the same with `send`/`recv` of msgpack bytes. Each figure is the
median of `--repeats` timed runs of `--seconds` each, after a warm-up; every
reply is checked. Each server process is started by this script, waited for
until it reports its endpoint, and stopped with SIGTERM at the end (it exits by
itself if this process goes away).

Besides wall-clock µs per round trip, it reports the CPU time per round trip
burnt by this (client) process and by the server process, all threads included
(libzmq's I/O threads too); the server's figure comes from /proc (Linux only).

`--count` measures instead what does not move with the machine's load: the
instructions the server process executes per round trip, under valgrind's
callgrind (n and 3n round trips, the difference over 2n; set PYTHONHASHSEED=0
for repeatable counts). `--count client` counts the clients' instead, each in a
process of its own: ours against the raw ROUTER that answers with reply
envelopes, and the raw DEALER loop against the raw echo server.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import _callgrind as callgrind  # noqa: E402

BACKEND = "e"
MANAGER = "bench._bench_backend:EchoManager"
DRIVER = "bench._bench_backend:EchoDriver"
PIPELINE = 100
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
CALL_TIMEOUT = 10.0

Batch = Callable[[int], int]
"""Given the next value to send, do one round (1 or PIPELINE round trips), return how many."""


# -- server processes -------------------------------------------------------------------------
# Each runs in its own interpreter, started by `ServerProcess` with `python -c`, so that for the
# gevent server the monkey-patching happens before anything else is imported (as in actorsd).
_SERVER_BOOT = """\
import sys
if sys.argv[1] == "gevent":
    from gevent import monkey
    monkey.patch_all()
sys.path.insert(0, sys.argv[2])
from bench.bench_rpc import serve
sys.exit(serve(sys.argv[1], int(sys.argv[3])))
"""


def _report(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def serve(kind: str, parent: int) -> int:
    """Body of a server process: report `ENDPOINT <ep>`, serve until SIGTERM, report stats."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if kind == "raw":
        return _serve_raw(parent)
    if kind == "reply":
        return _serve_raw(parent, _reply_envelope)
    if kind == "grpc":
        from bench._bench_peers import serve_grpc

        return serve_grpc(parent, _report)
    if kind == "oslo":
        from bench._bench_peers import serve_oslo

        return serve_oslo(parent, f"bench-rpc-{parent}", _report)
    return _serve_service(kind, parent)


def _serve_service(runtime: str, parent: int) -> int:
    from actors import Service, ServiceConfig

    config = ServiceConfig(
        host="bench",
        registry=False,  # measure the transport and actors only
        runtime=runtime,
        enabled_backends=[BACKEND],
        backends={BACKEND: {"manager": MANAGER, "driver": DRIVER, "options": {}}},
    )
    service = Service(config).start()
    server = service.serve("tcp://127.0.0.1:0")
    assert service.system is not None
    stop = service.system.runtime.event()
    if runtime == "gevent":
        import gevent

        gevent.signal_handler(signal.SIGTERM, stop.set)
        gevent.signal_handler(signal.SIGINT, stop.set)
    else:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    _report(f"ENDPOINT {server.endpoint}")
    while not stop.wait(0.5):
        if os.getppid() != parent or service.failed is not None:
            break
    stats = dict(server.stats)
    ok = service.stop(timeout=10.0)
    _report("STOPPED " + json.dumps({"clean": ok, "stats": stats}))
    return 0 if ok else 1


def _reply_envelope(frames: list[bytes]) -> list[bytes]:
    """A reply envelope of the request's `args.value`: what a protocol client awaits."""
    import msgpack

    peer, body = frames
    request = msgpack.unpackb(body)
    reply = {"v": 1, "kind": "reply", "id": request["id"], "result": request["args"]["value"]}
    return [peer, msgpack.packb(reply)]


def _serve_raw(parent: int, answer: Callable[[list[bytes]], list[bytes]] | None = None) -> int:
    """A raw ROUTER: echoes each message back (`answer` None), or sends `answer(frames)`."""
    import zmq

    stopping = False

    def on_signal(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    context = zmq.Context()
    sock = context.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 1000)
    sock.setsockopt(zmq.RCVTIMEO, 250)  # wake up now and then to notice a stop
    sock.bind("tcp://127.0.0.1:0")
    _report(f"ENDPOINT {sock.getsockopt_string(zmq.LAST_ENDPOINT)}")
    recv_multipart, send_multipart = sock.recv_multipart, sock.send_multipart
    messages = 0
    while not stopping:
        try:
            frames = recv_multipart()
        except zmq.Again:
            if os.getppid() != parent:
                break
            continue
        send_multipart(frames if answer is None else answer(frames))
        messages += 1
    sock.close()
    context.term()
    _report("STOPPED " + json.dumps({"clean": True, "stats": {"messages": messages}}))
    return 0


class ServerProcess:
    """A server child process: started, waited for until ready, stopped with SIGTERM."""

    def __init__(
        self, kind: str, wrapper: list[str] | None = None, ready_timeout: float = READY_TIMEOUT
    ) -> None:
        """`wrapper` (e.g. valgrind and its options) runs the server's interpreter;
        the server's stderr is then kept in `errors` once it has stopped."""
        self.kind = kind
        self.endpoint = ""
        self.final: dict[str, Any] = {}
        self.errors = ""
        self.proc = subprocess.Popen(
            [
                *(wrapper or []),
                sys.executable,
                "-c",
                _SERVER_BOOT,
                kind,
                str(ROOT),
                str(os.getpid()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if wrapper else None,
            text=True,
            cwd=str(ROOT),
        )
        try:
            self.endpoint = self._wait_endpoint(ready_timeout)
        except BaseException:
            self.kill()
            raise

    def _wait_endpoint(self, ready_timeout: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + ready_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"{self.kind} server did not report its endpoint in time")
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if not ready:
                continue
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.kind} server exited with {self.proc.wait()}")
            if line.startswith("ENDPOINT "):
                return line.split(None, 1)[1].strip()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then wait for a clean exit; kill it (and complain) if it does not come."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, errors = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            message = f"{self.kind} server did not stop within {timeout:g}s"
            raise RuntimeError(message) from None
        self.errors = errors or ""
        for line in out.splitlines():
            if line.startswith("STOPPED "):
                self.final = json.loads(line.split(None, 1)[1])
        if self.proc.returncode != 0 or not self.final.get("clean"):
            raise RuntimeError(
                f"{self.kind} server did not stop cleanly (exit {self.proc.returncode})"
            )

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# -- clients ----------------------------------------------------------------------------------
def _check(value: int, got: Any) -> None:
    if got != value:
        raise AssertionError(f"echo({value}) returned {got!r}")


def rpc_rounds(client: Any) -> tuple[Batch, Batch]:
    call, call_async = client.call, client.call_async

    def sequential(value: int) -> int:
        _check(value, call(BACKEND, "echo", {"value": value}))
        return 1

    def pipelined(value: int) -> int:
        futures = [call_async(BACKEND, "echo", {"value": value + i}) for i in range(PIPELINE)]
        for i, future in enumerate(futures):
            _check(value + i, future.result())
        return PIPELINE

    return sequential, pipelined


def raw_rounds(sock: Any) -> tuple[Batch, Batch]:
    import msgpack

    packb, unpackb = msgpack.packb, msgpack.unpackb
    send, recv = sock.send, sock.recv

    def request(value: int) -> bytes:
        body: bytes = packb(
            {"id": value, "target": BACKEND, "method": "echo", "args": {"value": value}}
        )
        return body

    def sequential(value: int) -> int:
        send(request(value))
        _check(value, unpackb(recv())["args"]["value"])
        return 1

    def pipelined(value: int) -> int:
        for i in range(PIPELINE):
            send(request(value + i))
        expected = set(range(value, value + PIPELINE))
        for _ in range(PIPELINE):
            reply = unpackb(recv())
            if reply["args"]["value"] != reply["id"] or reply["id"] not in expected:
                raise AssertionError(f"unexpected echo {reply!r}")
            expected.discard(reply["id"])
        return PIPELINE

    return sequential, pipelined


# -- measuring --------------------------------------------------------------------------------
def run_once(batch: Batch, seconds: float, start_value: int) -> tuple[int, float]:
    clock = time.perf_counter
    start = clock()
    end = start + seconds
    value = start_value
    n = 0
    while clock() < end:
        done = batch(value)
        value += done
        n += done
    return n, clock() - start


@dataclass
class Result:
    key: str
    label: str
    in_flight: int
    runs: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)

    @property
    def ops(self) -> float:
        return statistics.median(self.runs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "in_flight": self.in_flight,
            "ops_per_s": round(self.ops, 1),
            "us_per_op": round(1e6 / self.ops, 2),
            "client_cpu_us_per_op": _median_us(self.client_cpu),
            "server_cpu_us_per_op": _median_us(self.server_cpu),
            "runs_ops_per_s": [round(r, 1) for r in self.runs],
        }


def _median_us(seconds: list[float]) -> float | None:
    return round(1e6 * statistics.median(seconds), 1) if seconds else None


def process_cpu(pid: int | None = None) -> float | None:
    """CPU seconds (user + system, all threads) of this process or of `pid` (Linux)."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bench:
    def __init__(self, seconds: float, repeats: int, warmup: float, quiet: bool) -> None:
        self.seconds, self.repeats, self.warmup, self.quiet = seconds, repeats, warmup, quiet
        self.results: dict[str, Result] = {}
        self.servers: dict[str, dict[str, Any]] = {}
        self.skipped: dict[str, str] = {}
        self._next_value = 0

    def measure(
        self, key: str, label: str, batch: Batch, in_flight: int, server_pid: int
    ) -> Result:
        def once(seconds: float) -> tuple[int, float]:
            n, elapsed = run_once(batch, seconds, self._next_value)
            self._next_value += n
            return n, elapsed

        once(self.warmup)
        result = Result(key, label, in_flight)
        for _ in range(self.repeats):
            client0, server0 = process_cpu(), process_cpu(server_pid)
            n, elapsed = once(self.seconds)
            client1, server1 = process_cpu(), process_cpu(server_pid)
            result.runs.append(n / elapsed)
            if client0 is not None and client1 is not None:
                result.client_cpu.append((client1 - client0) / n)
            if server0 is not None and server1 is not None:
                result.server_cpu.append((server1 - server0) / n)
        self.results[key] = result
        if not self.quiet:
            print(f"  {label:<48} {result.ops:>12,.0f} ops/s", file=sys.stderr, flush=True)
        return result


SERVICE_LABELS = {
    "gevent": "service-actors gevent server",
    "threading": "service-actors threading server",
    "reply": "service-actors client, raw ROUTER reply",
}
"""What `bench_service` measures our client against: a server of ours, or (to see
the client's own share) a raw ROUTER that answers with a reply envelope."""


def bench_service(bench: Bench, kind: str) -> None:
    from transport.client import RpcClient

    server = ServerProcess(kind)
    label = SERVICE_LABELS[kind]
    try:
        client = RpcClient(server.endpoint, green=False, timeout=CALL_TIMEOUT)
        try:
            sequential, pipelined = rpc_rounds(client)
            pid = server.proc.pid
            bench.measure(f"{kind}_seq", f"{label}, sequential", sequential, 1, pid)
            bench.measure(
                f"{kind}_pipe", f"{label}, {PIPELINE} in flight", pipelined, PIPELINE, pid
            )
            if client.stats:
                raise AssertionError(f"client saw bad or late replies: {dict(client.stats)}")
        finally:
            client.close()
    except BaseException:
        server.kill()
        raise
    server.stop()
    bench.servers[kind] = server.final


def bench_raw(bench: Bench) -> None:
    import zmq

    server = ServerProcess("raw")
    try:
        context = zmq.Context()
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, int(CALL_TIMEOUT * 1000))
        sock.connect(server.endpoint)
        try:
            sequential, pipelined = raw_rounds(sock)
            pid = server.proc.pid
            bench.measure("raw_seq", "raw pyzmq ROUTER/DEALER, sequential", sequential, 1, pid)
            bench.measure(
                "raw_pipe",
                f"raw pyzmq ROUTER/DEALER, {PIPELINE} in flight",
                pipelined,
                PIPELINE,
                pid,
            )
        finally:
            sock.close()
            context.term()
    except BaseException:
        server.kill()
        raise
    server.stop()
    bench.servers["raw"] = server.final


COUNT_TIMEOUT = 600.0
"""Seconds a server under valgrind gets to start and to stop, and a counted client to run."""


def whole_rounds(n: int, in_flight: int) -> int:
    """`n` round trips rounded up to whole rounds: `drive` runs PIPELINE at a time,
    and a count is divided by what ran."""
    return n if in_flight == 1 else -(-n // PIPELINE) * PIPELINE


def count_server_instructions(runtime: str, in_flight: int, n: int) -> float:
    """Instructions the server process executes per round trip, counted by callgrind.

    Unlike ops/s and CPU time, the count does not move with the machine's
    load. The server runs under valgrind for n and for 3n round trips; the
    difference over 2n leaves out its start, its stop and the warm-up.
    """
    n = whole_rounds(n, in_flight)

    def run(total: int) -> int:
        server = ServerProcess(runtime, callgrind.VALGRIND, ready_timeout=COUNT_TIMEOUT)
        try:
            drive(server.endpoint, total, sequential=in_flight == 1)
        except BaseException:
            server.kill()
            raise
        server.stop(COUNT_TIMEOUT)
        return callgrind.collected(server.errors)

    low, high = run(n), run(3 * n)
    return (high - low) / (2 * n)


def count_client_instructions(in_flight: int, n: int) -> tuple[float, float]:
    """Instructions per round trip of our client and of the raw pyzmq client (callgrind).

    Each client runs in a process of its own under valgrind (`--drive`): ours
    against the raw ROUTER that answers with reply envelopes (the "reply"
    scenario), the raw DEALER loop against the raw echo server; n and then 3n
    round trips, the difference over 2n, which leaves out start, connect and
    imports. Returns (ours, raw).
    """
    n = whole_rounds(n, in_flight)

    def count(kind: str) -> float:
        server = ServerProcess("reply" if kind == "ours" else "raw")
        try:

            def run(total: int) -> int:
                command = [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--drive",
                    server.endpoint,
                    "--ops",
                    str(total),
                    *(["--sequential"] if in_flight == 1 else []),
                    *(["--raw"] if kind == "raw" else []),
                ]
                return callgrind.count(command, COUNT_TIMEOUT)

            low, high = run(n), run(3 * n)
        finally:
            server.stop()
        return (high - low) / (2 * n)

    return count("ours"), count("raw")


def drive(endpoint: str, total: int, sequential: bool, raw: bool = False) -> int:
    """Body of `--drive`: `total` checked round trips to `endpoint`, from our client
    or (`raw`) from the raw pyzmq DEALER loop."""
    import zmq

    from transport.client import RpcClient

    context = zmq.Context()
    sock: Any = None
    client: Any = None
    try:
        if raw:
            sock = context.socket(zmq.DEALER)
            sock.connect(endpoint)
            rounds = raw_rounds(sock)
        else:
            client = RpcClient(endpoint, green=False, timeout=COUNT_TIMEOUT, context=context)
            rounds = rpc_rounds(client)
        batch = rounds[0 if sequential else 1]
        done = 0
        while done < total:
            done += batch(done)
    finally:
        if client is not None:
            client.close()
        if sock is not None:
            sock.close(linger=0)
        context.term()
    return 0


PEERS = {"grpc": "grpcio unary, msgpack", "oslo": "oslo.messaging RPC, RabbitMQ"}


def bench_peer(bench: Bench, kind: str) -> None:
    """A peer a user would pick instead; skipped, with a line saying why, if it cannot run."""
    from bench import _bench_peers as peers

    missing = peers.peer_missing(kind)
    if missing is not None:
        bench.skipped[kind] = missing
        print(f"  skipped {PEERS[kind]}: {missing}", file=sys.stderr, flush=True)
        return
    server = ServerProcess(kind)
    try:
        rounds = peers.grpc_rounds if kind == "grpc" else peers.oslo_rounds
        sequential, pipelined, close = rounds(server.endpoint, PIPELINE, _check)
        try:
            pid = server.proc.pid
            label = PEERS[kind]
            bench.measure(f"{kind}_seq", f"{label}, sequential", sequential, 1, pid)
            pipe_label = f"{label}, {PIPELINE} in flight"
            bench.measure(f"{kind}_pipe", pipe_label, pipelined, PIPELINE, pid)
        finally:
            close()
        server.stop()  # first: a server still consuming would declare its queues again
        bench.servers[kind] = server.final
    finally:
        server.kill()
        if kind == "oslo":
            try:
                peers.remove_oslo_leftovers(server.endpoint)
            except Exception as exc:
                print(f"  could not remove the oslo exchange/queues: {exc}", file=sys.stderr)


def run_all(bench: Bench, with_peers: bool = True) -> None:
    bench_raw(bench)
    bench_service(bench, "reply")
    bench_service(bench, "gevent")
    bench_service(bench, "threading")
    if with_peers:
        bench_peer(bench, "grpc")
        bench_peer(bench, "oslo")


RATIOS = [
    # key, numerator, denominator
    ("client_vs_raw_seq", "reply_seq", "raw_seq"),
    ("client_vs_raw_pipe", "reply_pipe", "raw_pipe"),
    ("gevent_vs_raw_seq", "gevent_seq", "raw_seq"),
    ("gevent_vs_raw_pipe", "gevent_pipe", "raw_pipe"),
    ("threading_vs_raw_seq", "threading_seq", "raw_seq"),
    ("threading_vs_raw_pipe", "threading_pipe", "raw_pipe"),
    ("gevent_vs_grpc_seq", "gevent_seq", "grpc_seq"),
    ("gevent_vs_grpc_pipe", "gevent_pipe", "grpc_pipe"),
    ("threading_vs_grpc_seq", "threading_seq", "grpc_seq"),
    ("threading_vs_grpc_pipe", "threading_pipe", "grpc_pipe"),
    ("gevent_vs_oslo_seq", "gevent_seq", "oslo_seq"),
    ("gevent_vs_oslo_pipe", "gevent_pipe", "oslo_pipe"),
    ("threading_vs_oslo_seq", "threading_seq", "oslo_seq"),
    ("threading_vs_oslo_pipe", "threading_pipe", "oslo_pipe"),
]


def ratios(results: dict[str, Result]) -> list[dict[str, Any]]:
    return [
        {
            "key": key,
            "ratio": round(results[num].ops / results[den].ops, 3),
            "numerator": results[num].label,
            "denominator": results[den].label,
        }
        for key, num, den in RATIOS
        if num in results and den in results
    ]


def report(bench: Bench, as_json: bool) -> None:
    import gevent
    import msgpack
    import zmq

    rows = [r.as_dict() | {"key": k} for k, r in bench.results.items()]
    ratio_rows = ratios(bench.results)
    meta = {
        "python": platform.python_version(),
        "gevent": gevent.__version__,
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "msgpack": ".".join(map(str, msgpack.version)),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "seconds": bench.seconds,
        "repeats": bench.repeats,
        "pipeline": PIPELINE,
        "servers": bench.servers,
        "skipped": bench.skipped,
    }
    if as_json:
        print(json.dumps({"meta": meta, "results": rows, "ratios": ratio_rows}, indent=2))
        return
    print(
        f"python {meta['python']}, pyzmq {meta['pyzmq']} (libzmq {meta['libzmq']}), "
        f"gevent {meta['gevent']}, {meta['cpus']} cpus, "
        f"median of {bench.repeats} x {bench.seconds:g}s"
    )
    print(
        f"{'scenario':<56} {'ops/s':>10} {'us/op':>8} {'client cpu':>10} {'server cpu':>10}"
        "  runs (ops/s)"
    )
    for row in rows:
        runs = ", ".join(f"{r:,.0f}" for r in row["runs_ops_per_s"])
        cpu = [
            "-" if row[k] is None else f"{row[k]:.1f}"
            for k in ("client_cpu_us_per_op", "server_cpu_us_per_op")
        ]
        print(
            f"{row['label']:<56} {row['ops_per_s']:>10,.0f} {row['us_per_op']:>8.1f} "
            f"{cpu[0]:>10} {cpu[1]:>10}  {runs}"
        )
    print("(client cpu / server cpu: CPU µs per round trip in each process, all threads)")
    print()
    for kind, why in bench.skipped.items():
        print(f"skipped {PEERS[kind]}: {why}")
    print(f"{'ratio':<112} {'value':>6}")
    for r in ratio_rows:
        name = f"{r['numerator']} / {r['denominator']}"
        print(f"{name:<112} {r['ratio']:>5.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per scenario")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("--no-peers", action="store_true", help="skip grpcio and oslo.messaging")
    parser.add_argument(
        "--count",
        choices=["gevent", "threading", "client"],
        help="instead: count the server's (or our client's) instructions per round trip "
        "under valgrind",
    )
    parser.add_argument("--drive", metavar="ENDPOINT", help=argparse.SUPPRESS)
    parser.add_argument("--raw", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sequential", action="store_true", help="with --count: one in flight")
    parser.add_argument("--ops", type=int, default=1000, help="with --count: round trips (n)")
    args = parser.parse_args(argv)
    if args.drive:
        return drive(args.drive, args.ops, args.sequential, args.raw)
    if args.count:
        in_flight = 1 if args.sequential else PIPELINE
        if args.count == "client":
            ours, raw = count_client_instructions(in_flight, args.ops)
            print(
                f"raw pyzmq client, {in_flight} in flight: {raw:,.0f} instructions per round trip"
            )
            per_op = ours
            what = f"our client (raw ROUTER reply server, {ours / raw:.1f}x raw)"
        else:
            per_op = count_server_instructions(args.count, in_flight, args.ops)
            what = f"{args.count} server"
        print(f"{what}, {in_flight} in flight: {per_op:,.0f} instructions per round trip")
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warmup = args.warmup if args.warmup is not None else min(0.5, args.seconds / 2)
    bench = Bench(args.seconds, args.repeats, warmup, quiet=args.json)
    run_all(bench, with_peers=not args.no_peers)
    report(bench, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
