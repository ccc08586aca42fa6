"""The benchmark scripts still run: a tiny run of each scenario of bench_ask.

Numbers are not checked here (timing belongs to the benchmarks, not the
tests); what is checked is that every scenario runs, checks its replies and
reports every ratio, so the benchmark does not rot between measurements.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH_ASK = ROOT / "bench" / "bench_ask.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH_ASK), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_bench_ask_measures_every_scenario_and_ratio():
    done = _run("--seconds", "0.05", "--repeats", "2", "--warmup", "0.01", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    keys = {row["key"] for row in report["results"]}
    assert {"gevent_full_seq", "mini_gevent_seq", "chain_gevent_seq", "pykka_ask_seq"} <= keys
    assert all(row["ops_per_s"] > 0 for row in report["results"])
    ratios = {row["key"]: row for row in report["ratios"]}
    assert ratios["gevent_full_vs_mini_gevent"]["target"] == 0.5
    assert ratios["gevent_full_vs_mini_gevent"]["target_source"] == "#2"
    assert ratios["gevent_full_vs_mini_gevent_50"]["target_source"] == "ours"
    assert ratios["gevent_full_vs_chain"]["target"] is None
    # Interleaved rounds: every scenario ran once per round, every ratio is paired per round.
    assert all(len(row["runs_ops_per_s"]) == 2 for row in report["results"])
    assert all(len(row["rounds"]) == 2 for row in report["ratios"])


@pytest.mark.parametrize("scenario", ["full", "minimal", "chain"])
@pytest.mark.parametrize("callers", ["1", "5"])
def test_bench_ask_counting_mode_runs_each_scenario(scenario, callers):
    done = _run("--count", scenario, "--ops", "200", "--callers", callers)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("bench_registry.py", ["--threads", "4"]),
        ("bench_journal.py", ["--callers", "4", "--free-writes"]),
    ],
)
def test_the_journal_benchmarks_run_against_the_current_schema(script, args):
    """They write the journal's tables themselves: a schema change must not break them.

    Exit status 1 is the registry bench saying its target was not met in a run
    this short; a traceback (a schema it no longer fits) is what fails here.
    """
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--seconds", "0.2", "--repeats", "1",
         "--warmup", "0", *args],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert out.returncode in (0, 1) and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert "journal" in out.stdout
    if "--free-writes" in args:
        assert "writes free" in out.stdout


def test_bench_rpc_measures_every_local_scenario_and_ratio():
    """Its servers start, answer every call, and stop cleanly (peers left out)."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_rpc.py"), "--seconds", "0.1",
         "--repeats", "1", "--no-peers", "--json"],
        capture_output=True, text=True, timeout=180, check=True,
    )  # fmt: skip
    report = json.loads(out.stdout)
    keys = {r["key"] for r in report["results"]}
    assert keys == {
        f"{kind}_{shape}" for kind in ("raw", "reply", "gevent", "threading")
        for shape in ("seq", "pipe")
    }  # fmt: skip
    assert all(r["ops_per_s"] > 0 for r in report["results"])
    assert {r["key"] for r in report["ratios"]} >= {"client_vs_raw_seq", "gevent_vs_raw_pipe"}
    assert all(server["clean"] for server in report["meta"]["servers"].values())


@pytest.mark.parametrize("shape", [[], ["--sequential"]])
@pytest.mark.parametrize(("server_kind", "client"), [("reply", []), ("raw", ["--raw"])])
def test_bench_rpc_drives_the_clients_that_count_client_counts(shape, server_kind, client):
    """`--count client` runs `--drive` under valgrind: it makes its round trips and exits 0."""
    sys.path.insert(0, str(ROOT))
    from bench.bench_rpc import ServerProcess

    server = ServerProcess(server_kind)
    try:
        out = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "bench_rpc.py"), "--drive", server.endpoint,
             "--ops", "300", *shape, *client],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        server.stop()
    assert out.returncode == 0, out.stderr[-3000:]
    assert server.final["stats"]["messages"] == 300


@pytest.mark.parametrize("runtime", ["gevent", "threading"])
@pytest.mark.parametrize("backend", ["plain", "journaled"])
def test_bench_journal_runs_the_requests_that_count_counts(runtime, backend):
    """`--count` runs `--count-run` under valgrind: exactly --ops requests, then a clean stop."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_journal.py"), "--count-run",
         f"{runtime}:{backend}", "--ops", "200", "--callers", "8"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "did not stop cleanly" not in out.stderr
