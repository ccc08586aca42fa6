"""Durable operations per second (journal group commit vs one commit per row) and heartbeat cost.

    python bench/bench_registry.py [--seconds S] [--repeats N] [--threads T] [--json]

Measures, in one run, on a SQLite file in a temporary directory and, when
ACTORS_TEST_POSTGRES_URL is set, on a scratch PostgreSQL database created for
the run (`actors_bench_<random>`, dropped at the end):

* (a) journal, as the service uses it: `--threads` operations in flight
  (default 32), all submitted by one thread that reacts to completions, the
  way the service's actors do (an actor attaches a callback to the accept's
  future and goes on; nothing blocks per operation). An accept counts once its
  future resolves, i.e. once its row is committed: the writer thread
  group-commits whatever is pending in one transaction;
* (a') journal, blocking callers: `--threads` threads each loop on
  `Journal.accept(...).result()`; the same group commit, plus one thread
  wake-up per acknowledgement;
* (b) baseline: the same threads each UPDATE one row (an operation's state
  change, as the journal writes it) and COMMIT, one transaction per operation,
  on a connection of their own held for the whole run (no connect per op; on
  SQLite with the registry's pragmas and BEGIN IMMEDIATE);
* (b') baseline: the same with one INSERT of a row of the same shape;
* (c) `Registry.heartbeat(ids)` for 1, 100 and 10,000 service rows: time per
  heartbeat and SQL statements per heartbeat (counted with a
  `before_cursor_execute` listener; it must be 1).

Each figure is the median of `--repeats` timed runs of `--seconds` each, after
a warm-up. Prints the ratios per database; the target (>= 4x) is for (a)/(b).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import secrets
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy  # noqa: E402
from sqlalchemy import (  # noqa: E402
    Engine,
    bindparam,
    create_engine,
    event,
    insert,
    make_url,
    text,
    update,
)
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
        "key_scope": "bench@b1",
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


def journal_in_flight(journal: Journal, in_flight: int, seconds: float) -> float:
    """Accepts per second with `in_flight` outstanding, submitted by this thread alone."""
    done: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
    end = time.perf_counter() + seconds
    submitted = completed = 0

    def submit() -> None:
        nonlocal submitted
        future = journal.accept(
            "bench@b1", "create_volume", {"size": 1, "name": f"vol-{submitted}"}
        )
        future.add_done_callback(done.put)
        submitted += 1

    start = time.perf_counter()
    for _ in range(in_flight):
        submit()
    while completed < submitted:
        done.get(timeout=WAIT).result(0)  # raises what the accept raised
        completed += 1
        if time.perf_counter() < end:
            submit()
    return completed / (time.perf_counter() - start)


def baseline_engine(registry: Registry, threads: int) -> Engine:
    """An engine with one pooled connection per thread, set up like the registry's."""
    url = registry.engine.url
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, pool_size=threads + 1, max_overflow=0)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(url, pool_size=threads + 1, max_overflow=0)


def insert_work(engine: Engine) -> Callable[[int, float], int]:
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


ROWS_PER_THREAD = 64


def update_work(engine: Engine, threads: int) -> Callable[[int, float], int]:
    """Each thread moves its own rows' state, one UPDATE and COMMIT per operation."""
    rows = [[values(i) for _ in range(ROWS_PER_THREAD)] for i in range(threads)]
    with engine.begin() as conn:
        conn.execution_options(**{_WRITE: True})
        conn.execute(insert(OperationModel), [row for mine in rows for row in mine])
    statement = (
        update(OperationModel)
        .where(OperationModel.id == bindparam("op_id"))
        .values(state=bindparam("state"), result=bindparam("result"), updated_at=bindparam("now"))
    )

    def work(i: int, end: float) -> int:
        n = 0
        mine = [row["id"] for row in rows[i]]
        with engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            while time.perf_counter() < end:
                params = {
                    "op_id": mine[n % ROWS_PER_THREAD],
                    "state": "running" if n % 2 else "accepted",
                    "result": n,
                    "now": datetime.now(UTC),
                }
                with conn.begin():
                    assert conn.execute(statement, params).rowcount == 1
                n += 1
        return n

    return work


def measure(work: Callable[[int, float], int], args: argparse.Namespace) -> list[float]:
    run_threads(work, args.threads, args.warmup)
    return [run_threads(work, args.threads, args.seconds) for _ in range(args.repeats)]


def measure_in_flight(journal: Journal, args: argparse.Namespace) -> list[float]:
    journal_in_flight(journal, args.threads, args.warmup)
    return [journal_in_flight(journal, args.threads, args.seconds) for _ in range(args.repeats)]


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
    runs: dict[str, list[float]] = {}
    per_batch: dict[str, float | None] = {}
    try:
        registry.upgrade()
        for key, label, run in (
            ("journal", f"(a) journal accept, {args.threads} in flight", measure_in_flight),
            (
                "journal_threads",
                f"(a') journal accept, {args.threads} blocking threads",
                lambda j, a: measure(journal_work(j), a),
            ),
        ):
            journal = Journal(registry)
            try:
                say(f"[{name}] {label}")
                runs[key] = run(journal, args)
                batches = journal.batches
            finally:
                journal.close(WAIT)
            accepted = count_operations(registry)
            per_batch[key] = round(accepted / batches, 1) if batches else None
            with registry.engine.begin() as conn:
                conn.execute(text("DELETE FROM operations"))
        engine = baseline_engine(registry, args.threads)
        try:
            say(f"[{name}] (b) UPDATE+COMMIT per operation, {args.threads} threads")
            runs["update"] = measure(update_work(engine, args.threads), args)
            say(f"[{name}] (b') INSERT+COMMIT per operation, {args.threads} threads")
            runs["insert"] = measure(insert_work(engine), args)
        finally:
            engine.dispose()
        heartbeats = []
        for rows in args.heartbeat_rows:
            say(f"[{name}] (c) heartbeat, {rows} rows")
            heartbeats.append(heartbeat_cost(registry, rows, args))
    finally:
        registry.close()
    ops = {key: statistics.median(r) for key, r in runs.items()}
    ratios = {
        f"{a}/{b}": round(ops[a] / ops[b], 2)
        for a in ("journal", "journal_threads")
        for b in ("update", "insert")
    }
    return {
        "database": name,
        "ops_per_s": {key: round(v, 1) for key, v in ops.items()},
        "runs": {key: [round(v, 1) for v in r] for key, r in runs.items()},
        "ops_per_batch": per_batch,
        "ratios": ratios,
        "target": TARGET_RATIO,
        "met": ratios["journal/update"] >= TARGET_RATIO,
        "heartbeat": heartbeats,
    }


def count_operations(registry: Registry) -> int:
    with registry.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM operations")).scalar_one())


SCENARIOS = (
    ("journal", "(a) journal accept, in flight"),
    ("journal_threads", "(a') journal accept, blocking threads"),
    ("update", "(b) UPDATE+COMMIT per operation"),
    ("insert", "(b') INSERT+COMMIT per operation"),
)


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
    print(f"{'database':<11} {'scenario':<38} {'ops/s':>9}  runs (ops/s)")
    for r in results:
        for key, label in SCENARIOS:
            shown = ", ".join(f"{v:,.0f}" for v in r["runs"][key])
            print(f"{r['database']:<11} {label:<38} {r['ops_per_s'][key]:>9,.0f}  {shown}")
        batches = ", ".join(f"{k} {v}" for k, v in r["ops_per_batch"].items())
        print(f"{'':<11} ops per journal batch: {batches}")
    print()
    names = {"journal": "(a)", "journal_threads": "(a')", "update": "(b)", "insert": "(b')"}
    for r in results:
        for pair, value in r["ratios"].items():
            a, b = pair.split("/")
            line = f"{r['database']:<11} ratio {names[a]}/{names[b]:<5} {value:>6.2f}x"
            if pair == "journal/update":
                line += f"  target >= {r['target']:g}x: {'met' if r['met'] else 'NOT met'}"
            print(line)
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
