"""Failover: three local daemons, one SIGKILLed under a steady stream of calls.

    python bench/bench_failover.py [--callers C] [--before S] [--after S]
                                   [--heartbeat S] [--runtime gevent|threading] [--json]

Starts three `actorsd` (each with its own CURVE server and client keypair, one
shared SQLite registry, topic "cluster", backend `tests.support:ClusterManager`
over FakeDriver), then runs `--callers` threads per kind of call, each with its
own `TopicClient` (operator keypair, `heartbeat`), in a loop:

* keyed: `shaped` (journaled: accepted, run and answered through the journal)
  with a new idempotency key per call: safe to repeat, so a call whose
  connection is lost is failed over to another host;
* unkeyed: `nap(0.05)`, a plain call that takes 50 ms: not safe to repeat, so
  a call in flight on the killed host fails with `ConnectionLost`.

After `--before` seconds one daemon is SIGKILLed; the stream goes on for
`--after` seconds. Reported per kind: calls made, calls failed (by error
type), the time from the kill to the end of the last failed call, the
slowest call that spanned the kill, and failovers (`TopicClient.failovers`).
Every wait has a deadline; the daemons are killed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actors.client import TopicClient  # noqa: E402
from actors.registry import Registry  # noqa: E402
from actors.registry.api import DatabaseUnavailable  # noqa: E402
from transport.security import ClientSecurity, generate_keypair  # noqa: E402

HOSTS = ("h1", "h2", "h3")
CONFIG = """
host = "{host}"
topic = "cluster"
runtime = "{runtime}"
database_url = "{url}"
report_interval = 1
service_down_time = 5
state_dir = "{state}"
enabled_backends = ["b1"]

[backends.b1]
manager = "tests.support:ClusterManager"
driver = "actors.drivers.fake:FakeDriver"

[transport]
bind = "tcp://127.0.0.1:0"
server_secret_key = "{keys}/{host}-server.key_secret"
client_keys_dir = "{allowed}"
client_secret_key = "{keys}/{host}-client.key_secret"
"""


def _start(tmp: Path, host: str) -> subprocess.Popen[bytes]:
    log = (tmp / f"{host}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, str(ROOT / "bin" / "actorsd"), "--config", str(tmp / f"{host}.toml")],
        stderr=log,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _wait(predicate: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_failover: gave up waiting for {what}")
        time.sleep(0.05)


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as name:
        tmp = Path(name)
        keys, allowed = tmp / "keys", tmp / "allowed"
        allowed.mkdir()
        for who in ("operator", *(f"{h}-{k}" for h in HOSTS for k in ("server", "client"))):
            public, _ = generate_keypair(keys, who)
            if not who.endswith("-server"):
                (allowed / public.name).write_bytes(public.read_bytes())
        url = f"sqlite:///{tmp / 'shared.sqlite'}"
        for host in HOSTS:
            (tmp / f"{host}.toml").write_text(
                CONFIG.format(
                    host=host,
                    runtime=args.runtime,
                    url=url,
                    state=tmp / host,
                    keys=keys,
                    allowed=allowed,
                )
            )
        procs = {host: _start(tmp, host) for host in HOSTS}
        registry = Registry(url, service_down_time=5)
        try:

            def all_up() -> bool:
                try:
                    records = registry.services()
                except DatabaseUnavailable:  # not created yet by the first daemon
                    return False
                return {r.host for r in records if r.is_up and r.endpoint} == set(HOSTS)

            _wait(all_up, "three hosts up")
            return _stream(args, registry, keys, procs)
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
            registry.close()


def _stream(
    args: argparse.Namespace,
    registry: Registry,
    keys: Path,
    procs: dict[str, subprocess.Popen[bytes]],
) -> dict[str, Any]:
    stop = threading.Event()
    calls: dict[str, list[tuple[float, float, str | None]]] = {"keyed": [], "unkeyed": []}
    failovers: Counter[str] = Counter()
    lock = threading.Lock()

    def caller(kind: str, index: int) -> None:
        security = ClientSecurity(keys / "operator.key_secret")
        with TopicClient(
            registry, "cluster", security=security, timeout=10, heartbeat=args.heartbeat
        ) as client:
            n = 0
            while not stop.is_set():
                n += 1
                started = time.monotonic()
                error: str | None = None
                try:
                    if kind == "keyed":
                        client.call("stamp", {"tag": f"c{index}-{n}"}, key=f"c{index}-{n}")
                    else:
                        client.call("nap", {"seconds": 0.05})
                except Exception as exc:
                    error = type(exc).__name__
                with lock:
                    calls[kind].append((started, time.monotonic(), error))
            failovers[kind] += client.failovers

    threads = [
        threading.Thread(target=caller, args=(kind, i), daemon=True)
        for kind in calls
        for i in range(args.callers)
    ]
    for thread in threads:
        thread.start()
    time.sleep(args.before)  # the steady stream before the kill
    victim = procs["h3"]
    victim.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    victim.wait(10)
    time.sleep(args.after)
    stop.set()
    for thread in threads:
        thread.join(15)
    report: dict[str, Any] = {"callers": args.callers, "heartbeat": args.heartbeat}
    for kind, rows in calls.items():
        failed = [r for r in rows if r[2] is not None]
        spanning = [end - start for start, end, _ in rows if start <= killed <= end]
        report[kind] = {
            "calls": len(rows),
            "failed": len(failed),
            "errors": dict(Counter(r[2] for r in failed)),
            "last_failure_after_kill_s": (
                round(max(end for _, end, _ in failed) - killed, 3) if failed else None
            ),
            "slowest_spanning_kill_s": round(max(spanning), 3) if spanning else None,
            "failovers": failovers[kind],
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--callers", type=int, default=4)
    parser.add_argument("--before", type=float, default=3.0)
    parser.add_argument("--after", type=float, default=5.0)
    parser.add_argument("--heartbeat", type=float, default=1.0)
    parser.add_argument("--runtime", choices=["gevent", "threading"], default="gevent")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"callers per kind: {args.callers}, client heartbeat {args.heartbeat:g}s")
    for kind in ("keyed", "unkeyed"):
        row = report[kind]
        last = row["last_failure_after_kill_s"]
        print(
            f"{kind:8} calls {row['calls']:6}  failed {row['failed']:3} {row['errors'] or ''}"
            f"  last failure {'-' if last is None else f'{last}s'} after the kill"
            f"  slowest call across the kill {row['slowest_spanning_kill_s']}s"
            f"  failovers {row['failovers']}"
        )


if __name__ == "__main__":
    main()
