"""A flood of malformed multi-frame messages against a server, with good calls alongside.

    python bench/bench_flood.py [--runtime gevent|threading] [--messages N]
                                [--connections C] [--max-frames F] [--json]

A server process (the one `bench_rpc.py` starts: `Service(...).serve()` with the
echo backend) is flooded from a child process with C DEALER connections, each
sending its share of N messages of 2..F frames, most frames small and one in
a hundred of 256 KiB. Meanwhile this process makes sequential good calls
(`RpcClient(green=False)`) and records each one's latency. Reported: the
server's RSS before, at its highest during the flood, and after; the good
calls' count, failures and p50/p99 latency; how many bad messages the server
counted.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_rpc import BACKEND, ServerProcess  # noqa: E402

_FLOODER = """\
import random, sys, threading, zmq
endpoint = sys.argv[1]
count, connections, max_frames = map(int, sys.argv[2:5])
big, small = b"x" * (256 << 10), b"y" * 512
context = zmq.Context()
def flood(n, seed):
    rnd = random.Random(seed)
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 1000)
    sock.connect(endpoint)
    for _ in range(n):
        frames = [big if rnd.random() < 0.01 else small[: rnd.randrange(513)]
                  for _ in range(rnd.randint(2, max_frames))]
        sock.send_multipart(frames, copy=False)
    sock.close(linger=5000)
share = count // connections
threads = [threading.Thread(target=flood, args=(share, i)) for i in range(connections)]
for t in threads: t.start()
for t in threads: t.join()
context.term()
"""


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runtime", choices=["gevent", "threading"], default="gevent")
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--max-frames", type=int, default=32)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from transport.client import RpcClient

    server = ServerProcess(args.runtime)
    pid = server.proc.pid
    try:
        client = RpcClient(server.endpoint, green=False, timeout=10)
        for i in range(200):  # warm up, then measure the quiet RSS
            client.call(BACKEND, "echo", {"value": i})
        rss_before = rss_bytes(pid)
        flooder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _FLOODER,
                server.endpoint,
                str(args.messages),
                str(args.connections),
                str(args.max_frames),
            ]
        )
        peak = rss_before
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.wait(0.05):
                peak = max(peak, rss_bytes(pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        latencies: list[float] = []
        failures = 0
        started = time.perf_counter()
        rnd = random.Random(1)
        while flooder.poll() is None:
            value = rnd.randrange(1 << 30)
            t0 = time.perf_counter()
            try:
                if client.call(BACKEND, "echo", {"value": value}) != value:
                    failures += 1
            except Exception:
                failures += 1
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
        stop.set()
        sampler.join()
        rss_after = rss_bytes(pid)
        ping = client.ping()
        client.close()
    except BaseException:
        server.kill()
        raise
    server.stop()
    stats = server.final.get("stats", {})
    latencies.sort()
    result: dict[str, Any] = {
        "runtime": args.runtime,
        "messages": args.messages,
        "connections": args.connections,
        "max_frames": args.max_frames,
        "flood_seconds": round(elapsed, 1),
        "rss_before_mb": round(rss_before / 2**20, 1),
        "rss_peak_mb": round(peak / 2**20, 1),
        "rss_growth_mb": round((peak - rss_before) / 2**20, 1),
        "rss_after_mb": round(rss_after / 2**20, 1),
        "good_calls": len(latencies),
        "good_failures": failures,
        "good_p50_ms": round(1e3 * statistics.median(latencies), 2) if latencies else None,
        "good_p99_ms": round(1e3 * latencies[int(len(latencies) * 0.99)], 2) if latencies else None,
        "server_bad_frames": stats.get("bad_frames"),
        "server_messages": stats.get("messages"),
        "pong": bool(ping),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:<20} {value}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
