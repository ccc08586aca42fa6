"""A backend with more shares than any mailbox holds starts, reports up and serves."""

from __future__ import annotations

import signal

import pytest

from share_service.errors import ShareNotReady
from tests.daemon import start_actorsd, wait_for
from tests.share_service.scale import is_up as backend_is_up
from tests.share_service.scale import seed_shares, start_and_wait_repaired, write_config
from transport.client import RpcClient

SHARES = 10_000


@pytest.mark.parametrize("runtime", ["gevent", "threading"])
def test_a_backend_with_10000_shares_restarts_reports_up_and_serves(tmp_path, runtime):
    seed_shares(tmp_path, SHARES)
    timings = start_and_wait_repaired(tmp_path, runtime, SHARES, timeout=120)
    assert timings["up_s"] < 60, timings
    log = (tmp_path / "actorsd.log").read_text()
    assert "init_host_with_rpc failed" not in log and "mailbox full" not in log
    assert f"start-up repairs done: {SHARES} share(s)" in log


def test_requests_are_served_or_answered_not_ready_while_repairs_run(tmp_path):
    seed_shares(tmp_path, SHARES)
    proc, endpoint = start_actorsd(write_config(tmp_path), tmp_path / "actorsd.log", "gevent")
    try:
        with RpcClient(endpoint, timeout=30) as client:
            # The last share is repaired last: a change to it waits, a read does not.
            last = f"s{SHARES - 1:06d}"
            try:
                client.call("local", "extend_share", {"share_id": last, "new_size_gb": 2})
            except ShareNotReady as refused:
                assert refused.retryable
            assert client.call("local", "get_share", {"share_id": last})["state"] in (
                "available",
                "extending",
            )
            wait_for(lambda: backend_is_up(tmp_path), "the backend to report up", 60)

            def extended() -> bool:
                try:
                    client.call("local", "extend_share", {"share_id": last, "new_size_gb": 3})
                except ShareNotReady:
                    return False
                return True

            wait_for(extended, "the repairs to reach the last share", 120)
            assert client.call("local", "get_share", {"share_id": last})["size_gb"] == 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
