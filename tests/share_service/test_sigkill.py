"""SIGKILL a share daemon under load, again and again: recovery finishes the work.

Workers drive shares through create, extend and (for half of them) delete,
each step a call with its own idempotency key, while the daemon is killed
`KILLS` times at varying points. After the last restart:

- no acknowledged operation is lost, and its keyed retry returns what the
  caller was first told;
- every operation ended 'succeeded' or 'failed' (none 'interrupted'), and
  each key succeeded at most once (no duplicates);
- a request whose answer was lost to a kill, retried with its key, ends
  succeeded or failed, and the shares are exactly what the succeeded steps
  made of them: no share in error or in a transitional state, no directory
  without its share and no share without its directory.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from actors.errors import ActorsError
from actors.registry import Registry, sqlite_url_for
from actors.registry.journal import Journal, OperationRecord
from share_service.errors import ShareNotReady
from tests.daemon import start_actorsd, wait_for
from tests.share_service.scale import write_config
from transport.client import RpcClient
from transport.errors import TransportError

KILLS = 10
WORKERS = 3
_STEPS = ("create_share", "extend_share", "delete_share")
_RETRY_AT_ONCE = (ShareNotReady,)  # refused before anything ran: the worker tries again


@dataclass
class Request:
    key: str
    share_id: str
    method: str
    args: dict[str, Any]
    answer: Any = None
    error: BaseException | None = None
    answered: bool = False  # False: the kill came first (or the connection went)


@dataclass
class Worker:
    name: str
    sent: list[Request] = field(default_factory=list)
    shares: int = 0

    def run(self, client: RpcClient, cycle: int, stop: threading.Event) -> None:
        while not stop.is_set():
            share_id = f"{self.name}-c{cycle}-n{self.shares}"
            self.shares += 1
            steps = _STEPS if self.shares % 2 else _STEPS[:2]
            for method in steps:
                args: dict[str, Any] = {"share_id": share_id}
                if method == "create_share":
                    args["size_gb"] = 1
                elif method == "extend_share":
                    args["new_size_gb"] = 2
                request = Request(f"{method}-{share_id}", share_id, method, args)
                self.sent.append(request)
                if not _send(client, request, stop):
                    return  # killed under it: the next cycle goes on with new shares
                if request.error is not None:
                    break  # refused for good: this share goes no further


def _send(client: RpcClient, request: Request, stop: threading.Event) -> bool:
    """Send until answered (retrying what was refused before it ran); False if killed."""
    while not stop.is_set():
        try:
            request.answer = client.call(
                "local", request.method, request.args, key=request.key, timeout=10
            )
        except _RETRY_AT_ONCE:
            continue
        except (ActorsError, TransportError) as exc:
            if stop.is_set():
                return False  # the daemon was killed: the answer is unknown
            if getattr(exc, "retryable", False):
                continue  # recorded failed with its key freed: the same key runs anew
            request.error = exc
        request.answered = True
        return True
    return False


def _retry(client: RpcClient, request: Request) -> Any:
    """The request again with its key, through transient refusals (within 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return client.call("local", request.method, request.args, key=request.key)
        except ActorsError as exc:
            if not getattr(exc, "retryable", False) or time.monotonic() > deadline:
                raise


def _journal(state: Path) -> list[OperationRecord]:
    registry = Registry(sqlite_url_for(state))
    try:
        with Journal(registry) as journal:
            return journal.list(limit=100_000)
    finally:
        registry.close()


def _unfinished(state: Path) -> int:
    return sum(r.state in ("accepted", "running") for r in _journal(state))


@pytest.mark.parametrize("runtime", ["gevent", "threading"])
def test_sigkill_under_load_loses_nothing_and_leaves_every_share_finished(tmp_path, runtime):
    config = write_config(tmp_path)
    state, shares_dir = tmp_path / "state", tmp_path / "root" / "shares"
    workers = [Worker(f"w{i}") for i in range(WORKERS)]
    rng = random.Random(21)
    for cycle in range(KILLS):
        proc, endpoint = start_actorsd(config, tmp_path / f"run{cycle}.log", runtime)
        stop = threading.Event()
        clients = [RpcClient(endpoint, timeout=10) for _ in workers]
        threads = [
            threading.Thread(target=w.run, args=(c, cycle, stop), daemon=True)
            for w, c in zip(workers, clients, strict=True)
        ]
        try:
            before = sum(len(w.sent) for w in workers)
            for thread in threads:
                thread.start()
            target = before + rng.randint(3, 30)  # kill at a different point each time
            wait_for(lambda n=target: sum(len(w.sent) for w in workers) >= n, "load", 30)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            stop.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            for client in clients:
                client.close()  # a call waiting on the dead daemon ends now
            for thread in threads:
                thread.join(15)
    sent = [r for w in workers for r in w.sent]
    assert sum(not r.answered for r in sent) >= KILLS // 2, "the kills hit nothing in flight"

    proc, endpoint = start_actorsd(config, tmp_path / "last.log", runtime)
    try:
        wait_for(lambda: _unfinished(state) == 0, "recovery to finish every operation", 30)
        with RpcClient(endpoint, timeout=10) as client:
            for request in sent:  # keyed retries: the recorded outcome, or run now
                try:
                    again = _retry(client, request)
                except ActorsError as exc:
                    assert not request.answered or request.error is not None, (request, exc)
                    if request.answered:
                        assert type(exc) is type(request.error), (request, exc)
                    request.error, request.answered = exc, True
                    continue
                if request.answered:
                    assert request.error is None and again == request.answer, request
                request.answer, request.answered = again, True
            listed = client.call("local", "list_shares", {"limit": 1000})
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    records = _journal(state)
    assert not [r for r in records if r.state not in ("succeeded", "failed")], "unfinished"
    succeeded: dict[str, int] = {}
    for record in records:
        if record.state == "succeeded":
            key = record.idempotency_key or record.id
            succeeded[key] = succeeded.get(key, 0) + 1
    assert all(n == 1 for n in succeeded.values()), "an operation ran twice"
    for request in sent:  # acknowledged, or answered by its keyed retry: in the journal
        if request.error is None:
            assert succeeded.get(request.key) == 1, request

    # The shares are what the succeeded steps made of them, and nothing else.
    expected: dict[str, int] = {}
    for request in sent:
        if request.error is not None:
            continue
        if request.method == "create_share":
            expected[request.share_id] = 1
        elif request.method == "extend_share":
            expected[request.share_id] = 2
        else:
            expected.pop(request.share_id, None)
    assert listed["next"] is None
    got = {s["id"]: s for s in listed["shares"]}
    assert {i: s["size_gb"] for i, s in got.items()} == expected
    assert {s["state"] for s in got.values()} <= {"available"}, "a share in error or transitional"
    assert {p.name for p in shares_dir.iterdir()} == set(expected)
    failed = [r for r in sent if r.error is not None]
    for request in failed:  # failed with no effect: a failed create made nothing
        if request.method == "create_share":
            assert request.share_id not in expected, request
