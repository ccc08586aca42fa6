"""Status latency while a daemon is flooded with `$service.operations` listings.

    python bench/bench_listing_flood.py [--root TREE] [--runtime gevent] [--requests N]
                                        [--connections C] [--operations K] [--json]

Starts `actorsd` (the embedded default: the share service on SQLite, its
state in a temporary directory) from the source tree `--root` (default: this
one; point it at a checkout of another commit to compare), journals K
operations (`create_share`), then, over TCP on 127.0.0.1:

* this process pipelines N `$service.operations {"limit": 100}` requests at
  once (each lists the K operations), spread over C connections, and waits
  for every reply;
* meanwhile a second client, in its own process (so that it does not share
  this one's GIL), calls `$service.status` one after the other and records
  each round trip.

It reports how many listings were answered, refused (`Overloaded`, a retryable
`Busy`) or timed out, the flood's wall time, and the status round trips
(median, 99th percentile, max), then how long the daemon took to stop after
SIGTERM (killed after 90 s). A measurement, not a test: the figures depend
on the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from actors.errors import Busy  # noqa: E402
from transport.client import RpcClient  # noqa: E402
from transport.errors import TransportError  # noqa: E402

READY_TIMEOUT = 30.0
LISTING_TIMEOUT = 120.0
STATUS_TIMEOUT = 60.0
STOP_TIMEOUT = 90.0


def start_daemon(root: Path, runtime: str, state: Path) -> tuple[subprocess.Popen[bytes], str]:
    """actorsd from `root`, bound to a free port; its process and endpoint."""
    log = state / "actorsd.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(root / "bin" / "actorsd"),
                "--runtime",
                runtime,
                "--bind",
                "tcp://127.0.0.1:0",
            ],
            stderr=out,
            cwd=state,
            env={**os.environ, "PYTHONPATH": str(root), "ACTORS_STATE_DIR": str(state)},
        )
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if "listening on" in line:
                endpoint = line.split("listening on ", 1)[1].split(";")[0].split(" ")[0]
                return proc, endpoint
        if proc.poll() is not None:
            break
        time.sleep(0.05)  # polling a log file: there is nothing to wait on
    proc.kill()
    raise SystemExit(f"actorsd did not start:\n{log.read_text()}")


# The prober runs in its own interpreter: in this one it would share the GIL with the
# flood's client, and its round trips would measure this process rather than the daemon.
_PROBER = """\
import json, sys, threading, time
sys.path.insert(0, sys.argv[1])
from transport.client import RpcClient
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
latencies = []
with RpcClient(sys.argv[2], green=False, timeout=float(sys.argv[3])) as client:
    client.call("$service", "status")
    print("ready", flush=True)
    while not stop.is_set():
        began = time.perf_counter()
        client.call("$service", "status")
        latencies.append(time.perf_counter() - began)
print(json.dumps(latencies), flush=True)
"""


class Prober:
    """`$service.status` round trips, one after the other, from another process."""

    def __init__(self, endpoint: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _PROBER, str(ROOT), endpoint, str(STATUS_TIMEOUT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit("the status prober did not start")

    def stop(self) -> list[float]:
        out, _ = self.proc.communicate("", timeout=STATUS_TIMEOUT + 10)
        return sorted(json.loads(out.strip().splitlines()[-1]))


def flood(endpoint: str, requests: int, connections: int) -> dict[str, Any]:
    answered = refused = failed = 0
    clients = [
        RpcClient(endpoint, green=False, timeout=LISTING_TIMEOUT) for _ in range(connections)
    ]
    try:
        began = time.perf_counter()
        futures = [
            clients[i % connections].call_async("$service", "operations", {"limit": 100})
            for i in range(requests)
        ]
        for future in futures:
            try:
                future.result()
                answered += 1
            except Busy:
                refused += 1
            except TransportError:
                failed += 1
        seconds = time.perf_counter() - began
    finally:
        for client in clients:
            client.close()
    return {"answered": answered, "refused": refused, "failed": failed, "seconds": seconds}


def run(
    root: Path, runtime: str, requests: int, connections: int, operations: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
        proc, endpoint = start_daemon(root, runtime, Path(tmp))
        try:
            with RpcClient(endpoint, green=False, timeout=30) as client:
                for i in range(operations):
                    client.call("local", "create_share", {"share_id": f"s{i}", "size_gb": 1})
                idle = []
                for _ in range(20):
                    began = time.perf_counter()
                    client.call("$service", "status")
                    idle.append(time.perf_counter() - began)
            prober = Prober(endpoint)
            try:
                result = flood(endpoint, requests, connections)
            finally:
                latencies = prober.stop()
        finally:
            began = time.perf_counter()
            proc.terminate()  # a graceful stop: it finishes what it accepted first
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            stopped = time.perf_counter() - began
    ms = 1000.0
    return {
        "root": str(root),
        "runtime": runtime,
        "requests": requests,
        "connections": connections,
        "operations": operations,
        **result,
        "status_idle_ms": round(statistics.median(idle) * ms, 2),
        "status_probes": len(latencies),
        "status_median_ms": round(statistics.median(latencies) * ms, 1) if latencies else None,
        "status_p99_ms": (
            round(latencies[int(0.99 * (len(latencies) - 1))] * ms, 1) if latencies else None
        ),
        "status_max_ms": round(latencies[-1] * ms, 1) if latencies else None,
        "stop_seconds": round(stopped, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="source tree to run actorsd from")
    parser.add_argument("--runtime", choices=("gevent", "threading"), default="gevent")
    parser.add_argument("--requests", type=int, default=18_000)
    parser.add_argument("--connections", type=int, default=1, help="spread over this many")
    parser.add_argument("--operations", type=int, default=100, help="operations to journal first")
    parser.add_argument("--json", action="store_true", help="one JSON line instead of text")
    args = parser.parse_args()
    figures = run(
        args.root.resolve(), args.runtime, args.requests, args.connections, args.operations
    )
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>18}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
