"""FakeController hangs and releases: each release lets exactly one hung call through.

A release counts whether it comes before the call reached its hang or after,
so a test never has to know how far the driver got.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from actors import DeadlineExceeded
from actors.testing import FakeController, ServiceHarness


@pytest.fixture
def h(make_harness: Callable[..., ServiceHarness]) -> ServiceHarness:
    return make_harness()


def _runtime(h: ServiceHarness) -> Any:
    assert h.service.system is not None
    return h.service.system.runtime


def test_a_release_before_the_hang_lets_the_next_hung_call_pass(h):
    fake = h.fake("b1")
    fake.hang("create")
    fake.release()  # nothing hangs yet: kept for the next hung call
    assert h.call("b1", "create", resource_id="r1", timeout=5) == {"id": "r1", "size": 1}
    assert fake.hung == 0


def test_a_release_after_the_hang_lets_the_hung_call_go(h):
    fake = h.fake("b1")
    fake.hang("create")
    assert h.client is not None
    pending = h.client.call_async("b1", "create", {"resource_id": "r1"}, timeout=10)
    fake.wait_until(lambda c: c.hung == 1, _runtime(h))
    assert not pending.done()
    fake.release()
    assert pending.result() == {"id": "r1", "size": 1}
    assert fake.hung == 0


def test_each_release_lets_exactly_one_hung_call_through(h):
    fake = h.fake("b1")
    fake.hang("create", times=2)
    fake.release()  # one release given early...
    assert h.call("b1", "create", resource_id="r1", timeout=5)["id"] == "r1"  # ...spent here
    assert h.client is not None
    second = h.client.call_async("b1", "create", {"resource_id": "r2"}, timeout=10)
    fake.wait_until(lambda c: c.hung == 1, _runtime(h))  # nothing left to let it pass
    assert not second.done()
    fake.release()
    assert second.result()["id"] == "r2"
    assert h.call("b1", "create", resource_id="r3", timeout=5)["id"] == "r3"  # hangs used up


def test_a_release_counts_many_at_once(h):
    fake = h.fake("b1")
    fake.hang("create", times=3)
    fake.release(times=3)
    for name in ("r1", "r2", "r3"):
        assert h.call("b1", "create", resource_id=name, timeout=5)["id"] == name


def test_a_hang_that_timed_out_spends_no_later_release(h):
    fake = h.fake("b1")
    fake.hang_timeout = 0.2
    fake.hang("create", times=2)
    with pytest.raises(DeadlineExceeded):
        h.call("b1", "create", resource_id="r1", timeout=5)
    assert fake.hung == 0
    fake.release()  # for the second hang, not the one that gave up
    assert h.call("b1", "create", resource_id="r2", timeout=5)["id"] == "r2"


def test_forget_lets_every_hung_call_go(h):
    fake = h.fake("b1")
    fake.hang("create")
    assert h.client is not None
    pending = h.client.call_async("b1", "create", {"resource_id": "r1"}, timeout=10)
    fake.wait_until(lambda c: c.hung == 1, _runtime(h))
    FakeController.forget("h@b1")  # a test's teardown: nothing may stay blocked
    assert pending.result()["id"] == "r1"
    assert FakeController.for_backend("h@b1") is not fake  # a fresh controller from now on
