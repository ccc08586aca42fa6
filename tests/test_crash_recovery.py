"""SIGKILL a daemon with journaled operations running: after a restart none is missing."""

from __future__ import annotations

import signal
import textwrap
from pathlib import Path
from typing import Any

import pytest

from actors.errors import OperationInterrupted
from actors.registry import Registry, sqlite_url_for
from actors.registry.journal import Journal
from tests.daemon import start_actorsd, wait_for
from transport.client import RpcClient

FINISHED = {"succeeded", "failed", "interrupted"}


def _journal_states(state_dir: Path) -> dict[str, Any]:
    registry = Registry(sqlite_url_for(state_dir))
    try:
        with Journal(registry) as journal:
            return {r.id: r for r in journal.list(limit=10_000)}
    finally:
        registry.close()


@pytest.mark.parametrize("runtime", ["gevent", "threading"])
def test_sigkill_with_operations_running_loses_nothing_acknowledged(tmp_path, runtime):
    state, work_root = tmp_path / "state", tmp_path / "work"
    config = tmp_path / "service.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            host = "node1"
            state_dir = "{state}"
            enabled_backends = ["slow"]
            [backends.slow]
            manager = "tests.support:SlowManager"
            driver = "tests.support:SlowDriver"
            options = {{ root = "{work_root}" }}
            """
        )
    )
    proc, endpoint = start_actorsd(config, tmp_path / "first.log", runtime)
    acked: dict[str, str] = {}  # operation id -> method
    try:
        with RpcClient(endpoint, timeout=10) as client:
            for i in range(12):
                method = "work" if i % 2 == 0 else "work_once"
                ack = client.cast("slow", method, {"item": f"item{i}", "seconds": 0.2}, key=f"k{i}")
                assert ack is not None
                acked[ack["operation"]] = method

            def one_done_one_running() -> bool:
                listed = client.call("$service", "operations", {"limit": 100})["operations"]
                states = [r["state"] for r in listed]
                return "succeeded" in states and "running" in states

            wait_for(one_done_one_running, "an operation to finish and the next to run")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    before = _journal_states(state)
    assert set(acked) <= set(before), "an acknowledged operation is missing from the journal"
    unfinished = {op_id for op_id in acked if before[op_id].state not in FINISHED}
    assert unfinished, "the kill came too late to test anything"

    proc, endpoint = start_actorsd(config, tmp_path / "second.log", runtime)
    try:
        with RpcClient(endpoint, timeout=10) as client:

            def all_finished() -> dict[str, Any] | None:
                records = {
                    op_id: client.call("$service", "operation", {"id": op_id}) for op_id in acked
                }
                return records if all(r["state"] in FINISHED for r in records.values()) else None

            after = wait_for(all_finished, "every acknowledged operation to finish")
            # A retry with a key now answers from the journal, without running again.
            interrupted = [i for i, r in after.items() if r["state"] == "interrupted"]
            if interrupted:
                first = after[interrupted[0]]
                with pytest.raises(OperationInterrupted):
                    client.call("slow", "work_once", first["args"], key=first["idempotency_key"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    for op_id, method in acked.items():
        record = after[op_id]
        if op_id not in unfinished:
            assert record["state"] == before[op_id].state  # finished before the kill: kept
        elif method == "work":
            assert record["state"] == "succeeded", record  # idempotent: run again
        else:
            assert record["state"] == "interrupted", record  # not idempotent: never re-run
            assert "not declared idempotent" in record["reason"]
    done_items = {after[i]["args"]["item"] for i in acked if after[i]["state"] == "succeeded"}
    assert done_items == {p.name for p in work_root.iterdir()}
