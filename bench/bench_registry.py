"""Durable operations per second (journal group commit vs one commit per row) and heartbeat cost.

    python bench/bench_registry.py [--seconds S] [--repeats N] [--threads T] [--json]

Measures, in one run, on a SQLite file in a temporary directory and, when
ACTORS_TEST_POSTGRES_URL is set, on a scratch PostgreSQL database created for
the run (`actors_bench_<random>`, dropped at the end):

* (a) journal: `Journal.accept(...).result()` from `--threads` concurrent
  threads (default 32). Each accept is durable when its future resolves: the
  writer thread group-commits whatever is pending in one transaction;
* (b) baseline: the same threads each INSERT one row of the same shape into
  the same operations table and COMMIT it, one transaction per operation, on
  a connection of their own held for the whole run (no connect per op; on
  SQLite with the registry's pragmas and BEGIN IMMEDIATE);
* (c) `Registry.heartbeat(ids)` for 1, 100 and 10,000 service rows: time per
  heartbeat and SQL statements per heartbeat (counted with a
  `before_cursor_execute` listener; it must be 1).

Each figure is the median of `--repeats` timed runs of `--seconds` each, after
a warm-up. Prints the ratio (a)/(b) per database against the target (>= 4x).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy  # noqa: E402
from sqlalchemy import Engine, create_engine, event, insert, make_url, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from actors.registry import Journal, Registry, ServiceRow, sqlite_url_for  # noqa: E402
from actors.registry.api import _WRITE, _sqlite_on_begin, _sqlite_on_connect  # noqa: E402
from actors.registry.models import OperationModel  # noqa: E402

TARGET_RATIO = 4.0
HEARTBEAT_ROWS = (1, 100, 10_000)
WAIT = 30.0  # seconds: deadline of every wait on a future


def run_threads(work: Callable[[int, float], int], threads: int, seconds: float) -> float:
    """Operations per second of `threads` threads each running work(index, end) until end."""
    counts = [0] * threads
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads + 1)

    def run(i: int) -> None:
        barrier.wait()
        try:
            counts[i] = work(i, end)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    start = time.perf_counter()
    end = start + seconds
    barrier.wait()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return sum(counts) / elapsed


def values(i: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": str(uuid.uuid4()),
        "idempotency_key": None,
        "target": "bench@b1",
        "method": "create_volume",
        "args": {"size": 1, "name": f"vol-{i}"},
        "state": "accepted",
        "result": None,
        "error": None,
        "reason": None,
        "created_at": now,
        "updated_at": now,
        "finished_at": None,
    }


def journal_work(journal: Journal) -> Callable[[int, float], int]:
    def work(i: int, end: float) -> int:
        n = 0
        while time.perf_counter() < end:
            journal.accept("bench@b1", "create_volume", {"size": 1, "name": f"vol-{i}"}).result(
                WAIT
            )
            n += 1
        return n

    return work


def baseline_engine(registry: Registry, threads: int) -> Engine:
    """An engine with one pooled connection per thread, set up like the registry's."""
    url = registry.engine.url
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, pool_size=threads + 1, max_overflow=0)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(url, pool_size=threads + 1, max_overflow=0)


def baseline_work(engine: Engine) -> Callable[[int, float], int]:
    statement = insert(OperationModel)

    def work(i: int, end: float) -> int:
        n = 0
        with engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            while time.perf_counter() < end:
                with conn.begin():
                    conn.execute(statement, values(i))
                n += 1
        return n

    return work


def measure(work: Callable[[int, float], int], args: argparse.Namespace) -> list[float]:
    run_threads(work, args.threads, args.warmup)
    return [run_threads(work, args.threads, args.seconds) for _ in range(args.repeats)]


def heartbeat_cost(registry: Registry, rows: int, args: argparse.Namespace) -> dict[str, Any]:
    topic = f"hb{rows}"
    ids = registry.register(
        [ServiceRow(f"h{i}", topic, topic, "b1", None, "1.0") for i in range(rows)]
    )
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement)

    event.listen(registry.engine, "before_cursor_execute", count)
    try:
        matched = registry.heartbeat(ids)
    finally:
        event.remove(registry.engine, "before_cursor_execute", count)
    assert matched == rows, (matched, rows)
    runs = []
    budget = max(0.2, min(args.seconds, 2.0))
    for _ in range(args.repeats):
        n = 0
        start = time.perf_counter()
        while n < 3 or time.perf_counter() - start < budget:
            registry.heartbeat(ids)
            n += 1
        runs.append((time.perf_counter() - start) / n * 1e3)
    return {
        "rows": rows,
        "ms_per_heartbeat": round(statistics.median(runs), 3),
        "runs_ms": [round(r, 3) for r in runs],
        "statements_per_heartbeat": len(statements),
    }


@contextmanager
def scratch_postgres(url: str) -> Iterator[str]:
    """A fresh database on the server of `url`, dropped afterwards."""
    name = f"actors_bench_{secrets.token_hex(6)}"
    admin_url = make_url(url.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = create_engine(
        admin_url.set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def bench_database(name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    def say(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr, flush=True)

    registry = Registry(url)
    try:
        registry.upgrade()
        journal = Journal(registry)
        try:
            say(f"[{name}] (a) journal accept, {args.threads} threads")
            before = journal.batches
            journal_runs = measure(journal_work(journal), args)
            batches = journal.batches - before
        finally:
            journal.close(WAIT)
        with registry.engine.connect() as conn:
            accepted = conn.execute(text("SELECT count(*) FROM operations")).scalar_one()
        engine = baseline_engine(registry, args.threads)
        try:
            say(f"[{name}] (b) INSERT+COMMIT per operation, {args.threads} threads")
            baseline_runs = measure(baseline_work(engine), args)
        finally:
            engine.dispose()
        heartbeats = []
        for rows in args.heartbeat_rows:
            say(f"[{name}] (c) heartbeat, {rows} rows")
            heartbeats.append(heartbeat_cost(registry, rows, args))
    finally:
        registry.close()
    journal_ops = statistics.median(journal_runs)
    baseline_ops = statistics.median(baseline_runs)
    return {
        "database": name,
        "journal_ops_per_s": round(journal_ops, 1),
        "journal_runs": [round(r, 1) for r in journal_runs],
        "journal_ops_per_batch": round(accepted / batches, 1) if batches else None,
        "baseline_ops_per_s": round(baseline_ops, 1),
        "baseline_runs": [round(r, 1) for r in baseline_runs],
        "ratio": round(journal_ops / baseline_ops, 2),
        "target": TARGET_RATIO,
        "met": journal_ops / baseline_ops >= TARGET_RATIO,
        "heartbeat": heartbeats,
    }


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    meta = {
        "python": platform.python_version(),
        "sqlalchemy": sqlalchemy.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "seconds": args.seconds,
        "repeats": args.repeats,
    }
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
        return
    print(
        f"python {meta['python']}, sqlalchemy {meta['sqlalchemy']}, {meta['cpus']} cpus, "
        f"{args.threads} threads, median of {args.repeats} x {args.seconds:g}s"
    )
    print(f"{'database':<11} {'scenario':<36} {'ops/s':>9}  runs (ops/s)")
    for r in results:
        for label, key, runs in (
            ("(a) journal accept (group commit)", "journal_ops_per_s", "journal_runs"),
            ("(b) INSERT+COMMIT per operation", "baseline_ops_per_s", "baseline_runs"),
        ):
            shown = ", ".join(f"{v:,.0f}" for v in r[runs])
            print(f"{r['database']:<11} {label:<36} {r[key]:>9,.0f}  {shown}")
        print(f"{'':<11} ops per journal batch: {r['journal_ops_per_batch']}")
    print()
    for r in results:
        verdict = "met" if r["met"] else "NOT met"
        print(
            f"{r['database']:<11} ratio (a)/(b) {r['ratio']:>6.2f}x  "
            f"target >= {r['target']:g}x: {verdict}"
        )
    print()
    print(f"{'database':<11} {'rows':>7} {'ms/heartbeat':>13} {'statements':>11}  runs (ms)")
    for r in results:
        for h in r["heartbeat"]:
            shown = ", ".join(f"{v:.3f}" for v in h["runs_ms"])
            print(
                f"{r['database']:<11} {h['rows']:>7,} {h['ms_per_heartbeat']:>13.3f} "
                f"{h['statements_per_heartbeat']:>11}  {shown}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per scenario")
    parser.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds")
    parser.add_argument("--threads", type=int, default=32, help="concurrent writer threads")
    parser.add_argument(
        "--heartbeat-rows",
        type=lambda s: [int(x) for x in s.split(",")],
        default=list(HEARTBEAT_ROWS),
        help="comma-separated service row counts for the heartbeat cost",
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        results.append(bench_database("sqlite", sqlite_url_for(tmp), args))
    postgres = os.environ.get("ACTORS_TEST_POSTGRES_URL")
    if postgres:
        with scratch_postgres(postgres) as url:
            results.append(bench_database("postgresql", url, args))
    report(results, args)
    return 0 if all(r["met"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
