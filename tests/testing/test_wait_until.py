"""`wait_until`: polling a condition from a test, with a deadline, on both runtimes."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from actors.testing import ServiceHarness, WaitTimeout, wait_until


def test_it_returns_the_first_true_value():
    values = iter([0, None, "", 7])
    assert wait_until(lambda: next(values), timeout=5, interval=0.001) == 7


def test_a_timeout_names_what_it_waited_for_and_the_last_value():
    with pytest.raises(WaitTimeout) as err:
        wait_until(lambda: [], timeout=0.05, message="the queue to fill")
    assert err.value.what == "the queue to fill" and err.value.timeout == 0.05
    assert "the queue to fill" in str(err.value) and "last saw []" in str(err.value)


def test_without_a_message_the_predicate_is_named():
    def nothing_yet() -> bool:
        return False

    with pytest.raises(WaitTimeout, match="nothing_yet"):
        wait_until(nothing_yet, timeout=0.01)


def test_a_message_function_describes_things_at_the_timeout():
    seen: list[int] = []
    with pytest.raises(WaitTimeout, match="after 1 look"):
        wait_until(lambda: seen.append(1), timeout=0, message=lambda: f"after {len(seen)} look")


def test_it_sees_another_thread_change_the_condition():
    done = threading.Event()
    threading.Thread(target=done.set).start()
    assert wait_until(done.is_set, timeout=5)


def test_refuses_a_negative_timeout_or_no_interval():
    with pytest.raises(ValueError):
        wait_until(lambda: True, timeout=-1)
    with pytest.raises(ValueError):
        wait_until(lambda: True, interval=0)


def test_actors_keep_running_while_a_test_polls(make_harness: Callable[..., ServiceHarness]):
    """On gevent the actors share the test's thread: polling must let them run."""
    h = make_harness()
    fake = h.fake("b1")
    fake.delay("create", 0.05)  # the driver sleeps on its runtime: gevent's hub must run
    assert h.cast("b1", "create", resource_id="r1") is None  # not journaled: poll the fake
    assert "r1" not in fake.resources
    assert wait_until(lambda: "r1" in fake.resources, timeout=5, message="r1 to be created")
