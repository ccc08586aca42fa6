"""Journaled requests per second: `@rpc(journal=True)` against the same method plain.

    python bench/bench_journal.py [--seconds S] [--repeats N] [--callers C] [--free-writes] [--json]
    PYTHONHASHSEED=0 python bench/bench_journal.py --count gevent|threading [--ops N] [--callers C]

Measures, in one run, on each runtime (gevent, then threading), with a
`Service(config, runtime=...)` whose registry and operation journal are a
SQLite file in a temporary state_dir (`registry=True`, heartbeats every hour
so that they do not interfere), `--callers` concurrent callers (default 32;
greenlets on gevent, in the main thread without monkey-patching; threads on
threading), each looping on `service.ask(target, "create", {...}).result()`:

* (a) plain: `PlainManager.create`, a plain `@rpc` method that returns the
  driver's future (a FakeDriver stand-in operation, see below);
* (b) journaled: `JournaledManager.create`, the same body declared
  `@rpc(journal=True)`: the request is group-committed as 'accepted' before it
  runs, 'running' is written when it starts, and the reply waits for the
  commit of 'succeeded' (three journal writes per request);
* (c) journaled with an idempotency key per request (`key=...`, a new key
  each time): the same three writes, the accept an `INSERT ... ON CONFLICT DO
  NOTHING`;
* (d) journaled retries: the keys (and arguments) of requests (c) completed,
  sent again. Each is accepted through the journal (one write, which finds the
  key taken and reads the recorded operation) and answered from it without
  running: the script checks that the driver ran nothing during (d).
* with `--free-writes`, (b) again with every journal write answered at once,
  without the database (the writer thread still batches and completes them):
  the framework's own cost of a journaled request, which bounds (b)/(a).

Every request has distinct arguments (`resource_id` from a shared counter).
The driver is `actors.drivers.fake:FakeDriver`, and the managers call a
stand-in operation, `provision`, whose result is set with
`FakeController.returns` (`{"id": resource_id, "size": size}`): FakeDriver's
own `create` sums every resource's size on each call, which would make the
plain path slow down as resources pile up. Every reply is checked.

Also printed per scenario: the journal's batches (`Journal.batches`) during
the timed runs, as requests per batch and journal writes per batch, and the
process CPU time per request (all threads). With ACTORS_TEST_POSTGRES_URL set,
(b) is repeated on each runtime on a scratch PostgreSQL database created for
the run (`actors_bench_<random>`) and dropped at the end.

Each figure is the median of `--repeats` timed runs of `--seconds` each, after
a warm-up. Every wait has a deadline; every service is stopped at the end.

`--count` measures instead what does not move with the machine's load: the
instructions per request of (a) and of (b) with free writes, each in a
process of its own under valgrind's callgrind (n and 3n requests, the
difference over 2n), and their ratio.

Also measured first: the bare commit of this disk, a one-row INSERT committed
with `sqlite3` alone (WAL, the registry's synchronous setting) in the same
temporary directory, 200 times. A journaled request waits for two commits in
sequence (accepted, then its outcome), so with C callers it can go no faster
than C / (2 x commit): the bound printed with it. Issue #21's target:
(b)/(a) >= 0.25 on gevent, >= 0.15 on threading.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import gevent  # noqa: E402
import sqlalchemy  # noqa: E402
from sqlalchemy import text  # noqa: E402

from actors import ManagerActor, Service, ServiceConfig, rpc  # noqa: E402
from actors.drivers.fake import FakeController  # noqa: E402
from actors.registry.journal import _Accept  # noqa: E402  (--free-writes only)
from bench import _callgrind as callgrind  # noqa: E402
from bench.bench_registry import scratch_postgres  # noqa: E402

HOST = "bench"
PLAIN = "plain"
JOURNALED = "journaled"
MODULE = "bench.bench_journal"
DRIVER = "actors.drivers.fake:FakeDriver"
STAND_IN = "provision"
WAIT = 30.0  # seconds: deadline of every request, start, stop and join
RUNTIMES = ("gevent", "threading")


# -- the backends ---------------------------------------------------------------------------
class PlainManager(ManagerActor):
    """(a): a plain @rpc method; the reply follows the driver's future."""

    @rpc
    def create(self, resource_id: str, size: int = 1) -> Any:
        return self.driver.provision(resource_id, size)


class JournaledManager(ManagerActor):
    """(b)-(d): the same body, a durable operation."""

    @rpc(journal=True)
    def create(self, resource_id: str, size: int = 1) -> Any:
        return self.driver.provision(resource_id, size)


def _provisioned(resource_id: str, size: int = 1) -> dict[str, Any]:
    return {"id": resource_id, "size": size}


def controller(backend: str) -> FakeController:
    return FakeController.for_backend(f"{HOST}@{backend}")


def service_config(state_dir: str, database_url: str | None) -> ServiceConfig:
    def backend(manager: str) -> dict[str, Any]:
        return {"manager": f"{MODULE}:{manager}", "driver": DRIVER, "options": {}}

    return ServiceConfig(
        host=HOST,
        registry=True,
        database_url=database_url,
        state_dir=Path(state_dir),
        report_interval=3600.0,
        service_down_time=10800.0,
        default_timeout=WAIT,
        shutdown_timeout=WAIT,
        enabled_backends=[PLAIN, JOURNALED],
        backends={PLAIN: backend("PlainManager"), JOURNALED: backend("JournaledManager")},
    )


# -- callers ----------------------------------------------------------------------------------
Op = Callable[[int], Any]
Values = Callable[[int], Iterator[int]]  # caller index -> the resource numbers it sends


def _worker(op: Op, end: float, values: Iterator[int], done: list[int] | None) -> int:
    clock = time.perf_counter
    n = 0
    for value in values:
        if clock() >= end:
            break
        reply = op(value)
        if reply != {"id": f"r{value}", "size": 1}:
            raise AssertionError(f"create(r{value}) returned {reply!r}")
        if done is not None:
            done.append(value)
        n += 1
    return n


def run_greenlets(
    op: Op, seconds: float, callers: int, values: Values, done: list[int] | None
) -> tuple[int, float]:
    start = time.perf_counter()
    end = start + seconds
    workers = [gevent.spawn(_worker, op, end, values(i), done) for i in range(callers)]
    finished = gevent.joinall(workers, timeout=seconds + WAIT + 5.0, raise_error=True)
    if len(finished) != callers:
        gevent.killall(workers, timeout=5.0)
        raise TimeoutError(f"{callers - len(finished)} caller greenlets did not finish")
    elapsed = time.perf_counter() - start
    return sum(w.value for w in workers), elapsed


def run_threads(
    op: Op, seconds: float, callers: int, values: Values, done: list[int] | None
) -> tuple[int, float]:
    counts = [0] * callers
    errors: list[BaseException] = []
    barrier = threading.Barrier(callers + 1)

    def work(i: int) -> None:
        try:
            barrier.wait(WAIT)
            counts[i] = _worker(op, end, values(i), done)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(callers)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    end = start + seconds
    barrier.wait(WAIT)
    deadline = end + WAIT + 5.0
    for t in threads:
        t.join(max(0.0, deadline - time.perf_counter()))
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    alive = sum(t.is_alive() for t in threads)
    if alive:
        raise TimeoutError(f"{alive} caller threads did not finish")
    return sum(counts), elapsed


# -- measuring --------------------------------------------------------------------------------
@dataclass
class Result:
    key: str
    runtime: str
    database: str
    label: str
    writes_per_request: int  # journal writes per request (0: not journaled)
    runs: list[float] = field(default_factory=list)
    requests: int = 0  # completed in the timed runs
    elapsed: float = 0.0
    cpu: float = 0.0
    batches: int = 0

    @property
    def ops(self) -> float:
        return statistics.median(self.runs)

    def as_dict(self) -> dict[str, Any]:
        per_batch = self.requests / self.batches if self.batches else None
        return {
            "key": self.key,
            "runtime": self.runtime,
            "database": self.database,
            "label": self.label,
            "ops_per_s": round(self.ops, 1),
            "runs_ops_per_s": [round(r, 1) for r in self.runs],
            "cpu_us_per_op": round(1e6 * self.cpu / self.requests, 1) if self.requests else None,
            "batches": self.batches,
            "requests_per_batch": round(per_batch, 1) if per_batch is not None else None,
            "writes_per_batch": (
                round(per_batch * self.writes_per_request, 1)
                if per_batch is not None and self.writes_per_request
                else None
            ),
        }


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results: list[Result] = []

    def say(self, message: str) -> None:
        if not self.args.json:
            print(message, file=sys.stderr, flush=True)

    def measure(
        self,
        service: Service,
        result: Result,
        op: Op,
        values: Values,
        done: list[int] | None = None,
    ) -> Result:
        args = self.args
        run = run_greenlets if result.runtime == "gevent" else run_threads
        operations = service.operations
        assert operations is not None
        journal = operations.journal
        run(op, args.warmup, args.callers, values, done)
        for _ in range(args.repeats):
            for backend in (PLAIN, JOURNALED):
                controller(backend).calls.clear()  # the driver is idle: keep memory flat
            batches = journal.batches
            cpu = time.process_time()
            n, elapsed = run(op, args.seconds, args.callers, values, done)
            result.cpu += time.process_time() - cpu
            result.batches += journal.batches - batches
            result.requests += n
            result.elapsed += elapsed
            result.runs.append(n / elapsed)
        self.results.append(result)
        self.say(f"  {result.label:<52} {result.ops:>9,.0f} req/s")
        return result


def fresh_values(counter: Iterator[int]) -> Values:
    def values(i: int) -> Iterator[int]:
        return counter  # shared: next() is atomic under the GIL, so every id is new

    return values


def retry_values(done: list[int], callers: int) -> Values:
    def values(i: int) -> Iterator[int]:
        mine = done[i::callers] or done
        return itertools.cycle(mine)

    return values


def ask_op(service: Service, backend: str, keyed: bool) -> Op:
    ask = service.ask

    if keyed:

        def op(value: int) -> Any:
            rid = f"r{value}"
            return ask(
                backend, "create", {"resource_id": rid, "size": 1}, timeout=WAIT, key=f"k-{rid}"
            ).result()

    else:

        def op(value: int) -> Any:
            return ask(
                backend, "create", {"resource_id": f"r{value}", "size": 1}, timeout=WAIT
            ).result()

    return op


def start_service(runtime: str, state_dir: str, database_url: str | None) -> Service:
    for backend in (PLAIN, JOURNALED):
        controller(backend).returns(STAND_IN, _provisioned)
    service = Service(service_config(state_dir, database_url), runtime=runtime)
    service.start(timeout=WAIT)
    if service.operations is None or service.backend_errors:
        stop(service)
        raise RuntimeError(f"service did not start as expected: {service.backend_errors}")
    return service


def stop(service: Service) -> None:
    if not service.stop(timeout=WAIT):
        print(f"warning: {service.name} did not stop cleanly", file=sys.stderr)


def check_paths(service: Service, counter: Iterator[int]) -> None:
    """One request each way: the journaled one is recorded, the plain one is not."""
    operations = service.operations
    assert operations is not None
    for backend in (PLAIN, JOURNALED):
        value = next(counter)
        reply = ask_op(service, backend, keyed=False)(value)
        assert reply == {"id": f"r{value}", "size": 1}, reply
    journal = operations.journal
    assert not journal.list(target=f"{HOST}@{PLAIN}", limit=1), "plain request was journaled"
    [record] = journal.list(target=f"{HOST}@{JOURNALED}", limit=1)
    assert record.state == "succeeded", record


def operation_states(service: Service) -> dict[str, int]:
    assert service.registry is not None
    with service.registry.engine.connect() as conn:
        rows = conn.execute(text("SELECT state, count(*) FROM operations GROUP BY state"))
        return {state: count for state, count in rows}


def bench_runtime(bench: Bench, runtime: str, counter: Iterator[int]) -> dict[str, int]:
    callers = bench.args.callers
    unit = "greenlets" if runtime == "gevent" else "threads"
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        service = start_service(runtime, tmp, None)
        try:
            check_paths(service, counter)
            fresh = fresh_values(counter)

            def result(key: str, label: str, writes: int) -> Result:
                return Result(key, runtime, "sqlite", f"{runtime}: {label}", writes)

            bench.say(f"[{runtime}] {callers} caller {unit}, SQLite journal")
            bench.measure(
                service, result("a", "(a) plain @rpc", 0), ask_op(service, PLAIN, False), fresh
            )
            bench.measure(
                service,
                result("b", "(b) journaled", 3),
                ask_op(service, JOURNALED, False),
                fresh,
            )
            done: list[int] = []
            bench.measure(
                service,
                result("c", "(c) journaled, new key each", 3),
                ask_op(service, JOURNALED, True),
                fresh,
                done,
            )
            ctl = controller(JOURNALED)
            ctl.calls.clear()
            bench.measure(
                service,
                result("d", "(d) journaled retry, same key again", 1),
                ask_op(service, JOURNALED, True),
                retry_values(done, callers),
            )
            ran = ctl.ops().count(STAND_IN)
            if ran:
                raise AssertionError(f"retries ran the operation {ran} times")
            states = operation_states(service)
        finally:
            stop(service)
    return states


def bench_journaled_only(
    bench: Bench,
    runtime: str,
    counter: Iterator[int],
    database: str,
    url: str | None = None,
    prepare: Callable[[Service], None] | None = None,
) -> None:
    """(b) alone, on a service of its own: on PostgreSQL (`url`), or as `prepare` sets up."""
    what = {"postgresql": "PostgreSQL", "none": "writes free"}[database]
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        service = start_service(runtime, tmp, url)
        try:
            if prepare is None:
                check_paths(service, counter)
            else:
                prepare(service)
            bench.say(f"[{runtime}] journaled, {what}")
            bench.measure(
                service,
                Result("b", runtime, database, f"{runtime}: (b) journaled, {what}", 3),
                ask_op(service, JOURNALED, False),
                fresh_values(counter),
            )
        finally:
            stop(service)


def free_writes(service: Service) -> None:
    """Every journal write of `service` answered at once, without the database.

    What is left is the framework's own path for a journaled request (the
    actor hops, the futures, the writer thread's hand-offs, the bookkeeping):
    it bounds (b)/(a) whatever the database does. The writer still batches
    the writes and completes them from its thread; only the SQL is left out.
    """
    operations = service.operations
    assert operations is not None

    def free_write(batch: list[Any]) -> list[Any]:
        return [r.record if isinstance(r, _Accept) else None for r in batch]

    object.__setattr__(operations.journal, "_write", free_write)


def bare_commit() -> dict[str, Any]:
    """The median time of a bare one-row SQLite commit (WAL, default synchronous) here."""
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        db = sqlite3.connect(os.path.join(tmp, "bare.sqlite"), isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            (synchronous,) = db.execute("PRAGMA synchronous").fetchone()
            db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
            times = []
            for i in range(200):
                start = time.perf_counter()
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO t (body) VALUES (?)", (f"row {i}",))
                db.execute("COMMIT")
                times.append(time.perf_counter() - start)
        finally:
            db.close()
    return {"median_ms": round(1e3 * statistics.median(times), 3), "synchronous": synchronous}


# -- report -----------------------------------------------------------------------------------
def ratios(results: list[Result]) -> list[dict[str, Any]]:
    plain = {r.runtime: r for r in results if r.key == "a"}
    out = []
    for r in results:
        base = plain.get(r.runtime)
        if r.key == "a" or base is None:
            continue
        where = {"postgresql": " PostgreSQL", "none": " writes free"}.get(r.database, "")
        name = f"{r.runtime}: ({r.key}){where}/(a)"
        out.append({"ratio": name, "value": round(r.ops / base.ops, 3)})
    return out


def report(bench: Bench, states: dict[str, dict[str, int]], commit: dict[str, Any]) -> None:
    args = bench.args
    bound = args.callers / (2 * commit["median_ms"] / 1e3)
    rows = [r.as_dict() for r in bench.results]
    meta = {
        "python": platform.python_version(),
        "gevent": gevent.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "callers": args.callers,
        "seconds": args.seconds,
        "repeats": args.repeats,
        "bare_commit_ms": commit["median_ms"],
        "sqlite_synchronous": commit["synchronous"],
        "two_commit_bound_ops_per_s": round(bound),
    }
    ratio_rows = ratios(bench.results)
    if args.json:
        out = {"meta": meta, "results": rows, "ratios": ratio_rows, "operation_states": states}
        print(json.dumps(out, indent=2))
        return
    print(
        f"python {meta['python']}, gevent {meta['gevent']}, sqlalchemy {meta['sqlalchemy']}, "
        f"{meta['cpus']} cpus, {args.callers} callers, median of {args.repeats} x {args.seconds:g}s"
    )
    print(
        f"{'scenario':<52} {'req/s':>8} {'cpu us':>7} {'req/batch':>9} {'writes/batch':>12}"
        "  runs (req/s)"
    )
    for row in rows:
        runs = ", ".join(f"{v:,.0f}" for v in row["runs_ops_per_s"])
        per_batch = "-" if row["requests_per_batch"] is None else f"{row['requests_per_batch']:.1f}"
        writes = "-" if row["writes_per_batch"] is None else f"{row['writes_per_batch']:.1f}"
        print(
            f"{row['label']:<52} {row['ops_per_s']:>8,.0f} {row['cpu_us_per_op']:>7.0f} "
            f"{per_batch:>9} {writes:>12}  {runs}"
        )
    print()
    for r in ratio_rows:
        print(f"{r['ratio']:<36} {r['value']:>6.3f}x")
    print(
        f"bare SQLite commit here: {commit['median_ms']:.2f} ms median (synchronous="
        f"{commit['synchronous']}): two commits in sequence bound {args.callers} callers"
        f" to {bound:,.0f} journaled req/s"
    )
    print()
    for runtime, counts in states.items():
        shown = ", ".join(f"{state} {n:,}" for state, n in sorted(counts.items()))
        print(f"journal rows after the {runtime} run: {shown}")


# -- counting ------------------------------------------------------------------------------
COUNT_SECONDS = 3600.0  # --count-run is not timed: its callers stop when the requests run out
COUNT_TIMEOUT = 1800.0  # one run under valgrind


def count_run(runtime: str, backend: str, ops: int, callers: int) -> int:
    """Body of `--count-run`: exactly `ops` requests to `backend`, writes free, untimed."""
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        service = start_service(runtime, tmp, None)
        try:
            free_writes(service)
            shared = iter(range(ops))  # next() is atomic under the GIL: `ops` in all
            run = run_greenlets if runtime == "gevent" else run_threads
            n, _ = run(
                ask_op(service, backend, False), COUNT_SECONDS, callers, lambda i: shared, None
            )
            if n != ops:
                raise AssertionError(f"{n} requests ran, not {ops}")
        finally:
            stop(service)
    return 0


def count_instructions(runtime: str, ops: int, callers: int) -> dict[str, float]:
    """Instructions per request of (a) plain and of (b) journaled with free writes.

    Each runs in a process of its own under valgrind's callgrind, for `ops`
    and for 3 x `ops` requests; the difference over 2 x `ops` leaves out
    start-up and stop. Unlike req/s and CPU time the count does not move with
    the machine's load, so two versions of the journaled path can be compared
    on a busy machine (set PYTHONHASHSEED=0 for repeatable counts).
    """

    def run(backend: str, total: int) -> int:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--count-run",
            f"{runtime}:{backend}",
            "--ops",
            str(total),
            "--callers",
            str(callers),
        ]
        return callgrind.count(command, COUNT_TIMEOUT)

    return {
        backend: (run(backend, 3 * ops) - run(backend, ops)) / (2 * ops)
        for backend in (PLAIN, JOURNALED)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per scenario")
    parser.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds")
    parser.add_argument("--callers", type=int, default=32, help="concurrent callers")
    parser.add_argument(
        "--runtimes",
        type=lambda s: s.split(","),
        default=list(RUNTIMES),
        help="comma-separated runtimes to measure (gevent,threading)",
    )
    parser.add_argument(
        "--free-writes",
        action="store_true",
        help="also measure (b) with the journal's writes answered without the database",
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument(
        "--count",
        choices=RUNTIMES,
        help="instead: count instructions per request of (a) and of (b) with free writes "
        "under valgrind",
    )
    parser.add_argument("--ops", type=int, default=1000, help="with --count: requests (n)")
    parser.add_argument("--count-run", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.count_run:
        runtime, backend = args.count_run.split(":")
        return count_run(runtime, backend, args.ops, args.callers)
    if args.count:
        counts = count_instructions(args.count, args.ops, args.callers)
        for backend, label in ((PLAIN, "(a) plain"), (JOURNALED, "(b) journaled, writes free")):
            print(f"{args.count}, {label}: {counts[backend]:,.0f} instructions per request")
        print(f"{args.count}, (a)/(b): {counts[PLAIN] / counts[JOURNALED]:.3f}")
        return 0
    bench = Bench(args)
    counter = itertools.count()
    states: dict[str, dict[str, int]] = {}
    commit = bare_commit()
    bench.say(f"bare SQLite commit: {commit['median_ms']:.2f} ms median")
    try:
        for runtime in args.runtimes:
            states[runtime] = bench_runtime(bench, runtime, counter)
            if args.free_writes:
                bench_journaled_only(bench, runtime, counter, "none", prepare=free_writes)
        postgres = os.environ.get("ACTORS_TEST_POSTGRES_URL")
        if postgres:
            with scratch_postgres(postgres) as url:
                for runtime in args.runtimes:
                    bench_journaled_only(bench, runtime, counter, "postgresql", url)
    finally:
        for backend in (PLAIN, JOURNALED):
            FakeController.forget(f"{HOST}@{backend}")
    report(bench, states, commit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
