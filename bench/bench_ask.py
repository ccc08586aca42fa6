"""Ask round trips per second: the full service path against minimal baselines.

    python bench/bench_ask.py [--seconds S] [--repeats ROUNDS] [--json] [--profile]

Measures, in one process:

* the full path `Service.call` -> ManagerActor -> DriverActor (an `@rpc echo`
  that returns the driver's future) on the gevent runtime, with one caller and
  with 50 caller greenlets, and on the threading runtime, with one caller and
  with 8 caller threads;
* baseline A: a bare `pykka.ThreadingActor`, via `proxy.echo(v).get()` and via
  `ref.ask(v)`;
* baseline B: a minimal gevent actor: one greenlet reading `(value, AsyncResult)`
  pairs from a `gevent.queue.SimpleQueue`, with one caller and with 50;
* reference C: two such actors in a chain, the first handing each pair to the
  second, which completes it: the same two mailbox hops as the full path with
  gevent's own (compiled) primitives and no framework at all, so the floor
  that any two-hop path reaches against baseline B.

`Service.call` routes through the ServiceActor's routing table without a hop
through its mailbox, so a round trip crosses two mailboxes: the manager's and
the driver's. The gevent measurements run in the main thread without
monkey-patching. Every scenario runs once per round, the rounds one after
another (`--repeats` rounds of `--seconds` per scenario, after a warm-up), so
that a ratio pairs runs made close together: on a shared VM the machine's speed
drifts by tens of percent within the hour. A figure is the median of its runs,
a ratio the median of its per-round ratios; every reply is checked.

`--count SCENARIO --ops N [--callers K]` runs N round trips of one scenario
(`full`, `minimal` or `chain`, gevent, shared by K caller greenlets, default
one) untimed, for counting instructions
under `valgrind --tool=callgrind` (see BENCHMARKS.md): a measure that does not
move with the machine's load, for comparing two versions of the code.

`--profile` profiles the sequential gevent full path instead, with pyinstrument
when it is installed (a sampling profiler: stacks are those of the greenlet
running at each sample), else cProfile (whose cumulative times are not reliable
across greenlet switches), and prints where the time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.queue  # noqa: E402
import pykka  # noqa: E402

from actors import Service, ServiceConfig  # noqa: E402

BACKEND = "echo"
MANAGER = "bench._bench_backend:EchoManager"
DRIVER = "bench._bench_backend:EchoDriver"
GREENLET_CALLERS = 50
THREAD_CALLERS = 8

Op = Callable[[int], Any]


# -- baselines ------------------------------------------------------------------------------
class PykkaEcho(pykka.ThreadingActor):
    """Baseline A: a bare pykka ThreadingActor."""

    use_daemon_thread = True

    def echo(self, value: int) -> int:
        return value

    def on_receive(self, message: Any) -> Any:
        return message


# gevent before 25.4 exports the standard library's SimpleQueue (not green) under
# this name: there the baseline falls back to gevent's Queue.
_GREEN_SIMPLE_QUEUE = gevent.queue.SimpleQueue.__module__.startswith("gevent")
_BASELINE_QUEUE = gevent.queue.SimpleQueue if _GREEN_SIMPLE_QUEUE else gevent.queue.Queue


class MiniGeventActor:
    """Baseline B: one greenlet reading (value, AsyncResult) pairs from a queue."""

    def __init__(self) -> None:
        self.inbox: Any = _BASELINE_QUEUE()
        self.greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        get = self.inbox.get
        while True:
            message = get()
            if message is None:
                return
            value, result = message
            result.set(value)

    def echo(self, value: int) -> Any:
        result = gevent.event.AsyncResult()
        self.inbox.put((value, result))
        return result.get()

    def stop(self) -> None:
        self.inbox.put(None)
        self.greenlet.join()


class MiniGeventChain(MiniGeventActor):
    """Reference C: a minimal actor that hands each pair on to a second one."""

    def __init__(self) -> None:
        self.last = MiniGeventActor()
        super().__init__()

    def _loop(self) -> None:
        get, forward = self.inbox.get, self.last.inbox.put
        while True:
            message = get()
            if message is None:
                return
            forward(message)

    def stop(self) -> None:
        super().stop()
        self.last.stop()


# -- measuring ------------------------------------------------------------------------------
def _worker(op: Op, end: float, start_value: int) -> int:
    clock = time.perf_counter
    value = start_value
    n = 0
    while n == 0 or clock() < end:  # at least one: a caller that starts late still counts
        value += 1
        if op(value) != value:
            raise AssertionError(f"echo({value}) returned something else")
        n += 1
    return n


def run_sequential(op: Op, seconds: float) -> tuple[int, float]:
    start = time.perf_counter()
    n = _worker(op, start + seconds, 0)
    return n, time.perf_counter() - start


def run_greenlets(op: Op, seconds: float, callers: int) -> tuple[int, float]:
    start = time.perf_counter()
    end = start + seconds
    workers = [gevent.spawn(_worker, op, end, i * 10**9) for i in range(callers)]
    gevent.joinall(workers, raise_error=True)
    elapsed = time.perf_counter() - start
    return sum(w.value for w in workers), elapsed


def run_threads(op: Op, seconds: float, callers: int) -> tuple[int, float]:
    counts = [0] * callers
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            counts[i] = _worker(op, end, i * 10**9)
        except BaseException as exc:
            errors.append(exc)

    start = time.perf_counter()
    end = start + seconds
    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return sum(counts), elapsed


@dataclass
class Result:
    key: str
    label: str
    callers: int
    runs: list[float] = field(default_factory=list)

    @property
    def ops(self) -> float:
        return statistics.median(self.runs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "callers": self.callers,
            "ops_per_s": round(self.ops, 1),
            "us_per_op": round(1e6 / self.ops, 2),
            "runs_ops_per_s": [round(r, 1) for r in self.runs],
        }


@dataclass
class Scenario:
    key: str
    label: str
    op: Op
    kind: str  # "sequential", "greenlets" or "threads"
    callers: int = 1

    def once(self, seconds: float) -> float:
        """Round trips per second over one run of `seconds`."""
        if self.kind == "sequential":
            n, elapsed = run_sequential(self.op, seconds)
        elif self.kind == "greenlets":
            n, elapsed = run_greenlets(self.op, seconds, self.callers)
        else:
            n, elapsed = run_threads(self.op, seconds, self.callers)
        return n / elapsed


class Bench:
    """Runs every scenario once per round, rounds one after another.

    Interleaved so that a ratio compares runs made minutes apart at most, not a
    scenario measured early against one measured late: on a shared VM the
    machine's speed drifts by tens of percent within the hour. Each ratio is the
    median of its per-round ratios.
    """

    def __init__(self, seconds: float, repeats: int, warmup: float, quiet: bool) -> None:
        self.seconds, self.repeats, self.warmup, self.quiet = seconds, repeats, warmup, quiet
        self.results: dict[str, Result] = {}

    def run(self, scenarios: list[Scenario]) -> None:
        for scenario in scenarios:
            scenario.once(self.warmup)
            self.results[scenario.key] = Result(scenario.key, scenario.label, scenario.callers)
        for round_ in range(self.repeats):
            for scenario in scenarios:
                self.results[scenario.key].runs.append(scenario.once(self.seconds))
            if not self.quiet:
                print(f"  round {round_ + 1} of {self.repeats} done", file=sys.stderr, flush=True)


def service_config(runtime: str) -> ServiceConfig:
    return ServiceConfig(
        host="bench",
        registry=False,  # measure the actors only, no database heartbeats
        runtime=runtime,
        enabled_backends=[BACKEND],
        backends={BACKEND: {"manager": MANAGER, "driver": DRIVER, "options": {}}},
    )


def stop(service: Service) -> None:
    if not service.stop(timeout=10.0):
        print(f"warning: {service.name} did not stop cleanly", file=sys.stderr)


def service_op(service: Service) -> Op:
    call = service.call

    def op(value: int) -> Any:
        return call(BACKEND, "echo", {"value": value})

    return op


def run_all(bench: Bench) -> None:
    """Start every subject, then measure all scenarios in interleaved rounds.

    The gevent subjects run in the main thread without monkey-patching; the
    threaded ones (pykka, the threading runtime) sit idle in their own threads
    while the others are measured.
    """
    with contextlib.ExitStack() as stack:
        mini = MiniGeventActor()
        stack.callback(mini.stop)
        chain = MiniGeventChain()
        stack.callback(chain.stop)
        green = Service(service_config("gevent")).start()
        stack.callback(stop, green)
        ref = PykkaEcho.start()
        stack.callback(ref.stop)
        proxy = ref.proxy()
        threaded = Service(service_config("threading")).start()
        stack.callback(stop, threaded)

        def proxy_op(value: int) -> Any:
            return proxy.echo(value).get()

        many, threads = GREENLET_CALLERS, THREAD_CALLERS
        full, full_threaded = service_op(green), service_op(threaded)
        bench.run(
            [
                Scenario(
                    "mini_gevent_seq", "minimal gevent actor, 1 caller", mini.echo, "sequential"
                ),
                Scenario(
                    "mini_gevent_50",
                    f"minimal gevent actor, {many} greenlets",
                    mini.echo,
                    "greenlets",
                    many,
                ),
                Scenario(
                    "chain_gevent_seq", "two-hop gevent chain, 1 caller", chain.echo, "sequential"
                ),
                Scenario(
                    "chain_gevent_50",
                    f"two-hop gevent chain, {many} greenlets",
                    chain.echo,
                    "greenlets",
                    many,
                ),
                Scenario("gevent_full_seq", "gevent full path, 1 caller", full, "sequential"),
                Scenario(
                    "gevent_full_50", f"gevent full path, {many} greenlets", full, "greenlets", many
                ),
                Scenario(
                    "pykka_proxy_seq",
                    "pykka ThreadingActor proxy, 1 caller",
                    proxy_op,
                    "sequential",
                ),
                Scenario(
                    "pykka_ask_seq", "pykka ThreadingActor ref.ask, 1 caller", ref.ask, "sequential"
                ),
                Scenario(
                    "pykka_ask_8",
                    f"pykka ThreadingActor ref.ask, {threads} threads",
                    ref.ask,
                    "threads",
                    threads,
                ),
                Scenario(
                    "threading_full_seq",
                    "threading full path, 1 caller",
                    full_threaded,
                    "sequential",
                ),
                Scenario(
                    "threading_full_8",
                    f"threading full path, {threads} threads",
                    full_threaded,
                    "threads",
                    threads,
                ),
            ]
        )


RATIOS = [
    # key, numerator, denominator, target (minimum) or None. The targets are
    # issue #2's (a round trip: one caller), except where TARGET_SOURCE says.
    ("gevent_full_vs_mini_gevent", "gevent_full_seq", "mini_gevent_seq", 0.5),
    ("gevent_full_vs_mini_gevent_50", "gevent_full_50", "mini_gevent_50", 0.5),
    ("chain_vs_mini_gevent", "chain_gevent_seq", "mini_gevent_seq", None),
    ("chain_vs_mini_gevent_50", "chain_gevent_50", "mini_gevent_50", None),
    ("gevent_full_vs_chain", "gevent_full_seq", "chain_gevent_seq", None),
    ("gevent_full_vs_pykka_proxy", "gevent_full_seq", "pykka_proxy_seq", 5.0),
    ("gevent_full_vs_pykka_ask", "gevent_full_seq", "pykka_ask_seq", 5.0),
    # The ceiling of the two above: what no framework on gevent can beat on this machine.
    ("mini_gevent_vs_pykka_proxy", "mini_gevent_seq", "pykka_proxy_seq", None),
    ("mini_gevent_vs_pykka_ask", "mini_gevent_seq", "pykka_ask_seq", None),
    ("threading_full_vs_pykka_proxy", "threading_full_seq", "pykka_proxy_seq", None),
    ("threading_full_vs_pykka_ask", "threading_full_seq", "pykka_ask_seq", None),
]


# A stricter line we hold ourselves to: the same 0.5x with many callers.
TARGET_SOURCE = {"gevent_full_vs_mini_gevent_50": "ours"}


def ratios(results: dict[str, Result]) -> list[dict[str, Any]]:
    out = []
    for key, num, den, target in RATIOS:
        paired = [a / b for a, b in zip(results[num].runs, results[den].runs, strict=True)]
        value = statistics.median(paired)
        out.append(
            {
                "key": key,
                "ratio": round(value, 3),
                "rounds": [round(r, 3) for r in paired],
                "numerator": results[num].label,
                "denominator": results[den].label,
                "target": target,
                "target_source": None if target is None else TARGET_SOURCE.get(key, "#2"),
                "met": None if target is None else value >= target,
            }
        )
    return out


def report(bench: Bench, as_json: bool) -> None:
    rows = [r.as_dict() | {"key": k} for k, r in bench.results.items()]
    ratio_rows = ratios(bench.results)
    meta = {
        "python": platform.python_version(),
        "gevent": gevent.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "seconds": bench.seconds,
        "repeats": bench.repeats,
    }
    if as_json:
        print(json.dumps({"meta": meta, "results": rows, "ratios": ratio_rows}, indent=2))
        return
    print(
        f"python {meta['python']}, gevent {meta['gevent']}, {meta['cpus']} cpus, "
        f"{bench.repeats} interleaved rounds of {bench.seconds:g}s per scenario; medians"
    )
    print(f"{'scenario':<44} {'ops/s':>10} {'us/op':>8}  runs (ops/s)")
    for row in rows:
        runs = ", ".join(f"{r:,.0f}" for r in row["runs_ops_per_s"])
        print(f"{row['label']:<44} {row['ops_per_s']:>10,.0f} {row['us_per_op']:>8.1f}  {runs}")
    print()
    print(f"{'ratio (median of the rounds)':<72} {'value':>6}  {'rounds':<20}  target")
    for r in ratio_rows:
        name = f"{r['numerator']} / {r['denominator']}"
        spread = f"{min(r['rounds']):.2f}-{max(r['rounds']):.2f}"
        target = (
            "-"
            if r["target"] is None
            else (f">= {r['target']:g}x ({r['target_source']}): {'met' if r['met'] else 'NOT met'}")
        )
        print(f"{name:<72} {r['ratio']:>5.2f}x  {spread:<20}  {target}")


# -- counting -------------------------------------------------------------------------------
def count(scenario: str, ops: int, callers: int = 1) -> None:
    """Run `ops` round trips of one gevent scenario untimed (for callgrind).

    With several callers, each greenlet makes `ops // callers` of them.
    """
    if scenario == "full":
        service = Service(service_config("gevent")).start()
        op, done = service_op(service), lambda: stop(service)
    else:
        actor = MiniGeventActor() if scenario == "minimal" else MiniGeventChain()
        op, done = actor.echo, actor.stop

    def calls(first: int, n: int) -> None:
        for value in range(first, first + n):
            if op(value) != value:
                raise AssertionError(f"echo({value}) returned something else")

    try:
        if callers == 1:
            calls(0, ops)
        else:  # exactly `ops` in all: the first `ops % callers` callers make one more
            share, extra = divmod(ops, callers)
            sizes = [share + (i < extra) for i in range(callers)]
            starts = [sum(sizes[:i]) for i in range(callers)]
            workers = [gevent.spawn(calls, starts[i], sizes[i]) for i in range(callers)]
            gevent.joinall(workers, raise_error=True)
    finally:
        done()


# -- profiling ------------------------------------------------------------------------------
def profile(ops: int, top: int) -> None:
    service = Service(service_config("gevent")).start()
    op = service_op(service)
    try:
        for v in range(2000):
            op(v)
        start = time.perf_counter()
        for v in range(ops):
            op(v)
        plain = ops / (time.perf_counter() - start)
        try:
            from pyinstrument import Profiler
        except ImportError:
            _profile_cprofile(op, ops, top)
            return
        profiler = Profiler(interval=0.0001, async_mode="disabled")
        profiler.start()
        start = time.perf_counter()
        for v in range(ops):
            op(v)
        profiled = ops / (time.perf_counter() - start)
        profiler.stop()
        print(
            f"sequential gevent full path: {plain:,.0f} ops/s plain, "
            f"{profiled:,.0f} ops/s under pyinstrument"
        )
        print(profiler.output_text(time="percent_of_total"))
        root = profiler.last_session.root_frame() if profiler.last_session else None
        if root is not None:
            _print_flat(root, top)
    finally:
        stop(service)


def _print_flat(root: Any, top: int) -> None:
    """Self and inclusive time per function (pyinstrument's flat view merges [self])."""
    self_time: dict[str, float] = {}
    incl_time: dict[str, float] = {}

    def key(frame: Any) -> str:
        cls = f"{frame.class_name}." if frame.class_name else ""
        return f"{frame.file_path_short}:{cls}{frame.function}"

    def walk(frame: Any, seen: frozenset[str]) -> None:
        if frame.is_synthetic:
            return
        k = key(frame)
        self_time[k] = self_time.get(k, 0.0) + frame.total_self_time
        if k not in seen:
            incl_time[k] = incl_time.get(k, 0.0) + frame.time
        for child in frame.children:
            walk(child, seen | {k})

    walk(root, frozenset())
    total = root.time
    print(f"\nflat, top {top} by self time (% of all samples):")
    print(f"{'%self':>6} {'%incl':>6}  function")
    for k, t in sorted(self_time.items(), key=lambda kv: kv[1], reverse=True)[:top]:
        print(f"{100 * t / total:6.1f} {100 * incl_time[k] / total:6.1f}  {k}")


def _profile_cprofile(op: Op, ops: int, top: int) -> None:
    import cProfile
    import pstats

    print("pyinstrument is not installed (pip install pyinstrument); using cProfile, whose")
    print("cumulative times are unreliable across greenlet switches: read tottime only")
    profiler = cProfile.Profile()
    profiler.enable()
    for v in range(ops):
        op(v)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one timed run")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (timed runs per scenario)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument(
        "--profile", action="store_true", help="profile the sequential gevent full path instead"
    )
    parser.add_argument("--profile-ops", type=int, default=100_000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--count",
        choices=["full", "minimal", "chain"],
        help="run --ops round trips of one scenario untimed (for valgrind --tool=callgrind)",
    )
    parser.add_argument("--ops", type=int, default=10_000)
    parser.add_argument(
        "--callers", type=_positive, default=1, help="caller greenlets for --count (default 1)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.profile:
        profile(args.profile_ops, args.top)
        return 0
    if args.count:
        count(args.count, args.ops, args.callers)
        return 0
    warmup = args.warmup if args.warmup is not None else min(0.5, args.seconds / 2)
    bench = Bench(args.seconds, args.repeats, warmup, quiet=args.json)
    run_all(bench)
    report(bench, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
