"""Wall time of one actorsctl command, process start to exit (issue #20).

    python bench/bench_cli_startup.py [--runs N] [--json]

Starts `actorsd` (the default share service, threading runtime, a temporary
state directory, a free port), then runs each command `--runs` times (default
15) as a fresh `python bin/actorsctl ...` process and reports the median and
the fastest wall time:

* `--help`;
* `ping`;
* `call local describe` (a manager round trip);
* `call local get_share --arg share_id=none` (an error reply, exit 1);
* `ping` with nothing listening (exit 69).

Also printed: what `import actors.cli.actorsctl` costs on its own (the
median of the same runs of `python -c`) and whether it loaded SQLAlchemy,
Alembic or psycopg. Target (#20): `--help` and `call` at most 0.3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CTL = [sys.executable, str(ROOT / "bin" / "actorsctl")]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _timed(argv: list[str], runs: int, expect: int) -> dict[str, float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=ENV)
        times.append(time.perf_counter() - started)
        if done.returncode != expect:
            raise SystemExit(f"{argv[2:]} exited {done.returncode}: {done.stderr.strip()}")
    return {"median_s": statistics.median(times), "min_s": min(times)}


def _start_daemon(state: Path, endpoint: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bin" / "actorsd"), "--runtime", "threading",
         "--bind", endpoint, "--state-dir", str(state), "--log-format", "text"],
        stderr=subprocess.PIPE, text=True, env=ENV, cwd=state,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"actorsd exited {proc.wait(10)} before listening")
        if "listening on" in line:
            return proc
    proc.kill()
    raise SystemExit("actorsd did not listen within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    nowhere = f"tcp://127.0.0.1:{_free_port()}"
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as state:
        daemon = _start_daemon(Path(state), endpoint)
        try:
            at = ["--endpoint", endpoint]
            results["--help"] = _timed([*CTL, "--help"], options.runs, 0)
            results["ping"] = _timed([*CTL, *at, "ping"], options.runs, 0)
            results["call local describe"] = _timed(
                [*CTL, *at, "call", "local", "describe"], options.runs, 0
            )
            results["call (an error reply)"] = _timed(
                [*CTL, *at, "call", "local", "get_share", "--arg", "share_id=none"],
                options.runs,
                1,
            )
            results["ping, nothing listening"] = _timed(
                [*CTL, "--endpoint", nowhere, "ping"], options.runs, 69
            )
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
    probe = (
        "import sys; import actors.cli.actorsctl; "
        "print(sorted(m for m in ('sqlalchemy', 'alembic', 'psycopg') if m in sys.modules))"
    )
    results["python -c 'import actors.cli.actorsctl'"] = _timed(
        [sys.executable, "-c", probe], options.runs, 0
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=ENV, timeout=60
    ).stdout.strip()
    baseline = _timed([sys.executable, "-c", "pass"], options.runs, 0)
    if options.json:
        print(json.dumps({"results": results, "python_alone": baseline, "registry_stack": loaded}))
        return
    print(f"python {platform.python_version()} on {platform.machine()}, {options.runs} runs each")
    print(f"{'command':45} {'median':>8} {'fastest':>8}")
    for name, figures in results.items():
        print(f"{name:45} {figures['median_s']:7.3f}s {figures['min_s']:7.3f}s")
    print(f"{'python -c pass (the interpreter alone)':45} {baseline['median_s']:7.3f}s")
    print(f"registry stack imported by actorsctl: {loaded}")


if __name__ == "__main__":
    main()
