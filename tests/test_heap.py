"""Free heap memory goes back to the OS now and then (glibc malloc_trim)."""

from __future__ import annotations

import sys
import threading

import pytest

import actors.service_actor as service_actor
from actors import _heap


def _rss_mib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 >> 20


@pytest.mark.skipif(_heap.free_heap_bytes() is None, reason="needs glibc's mallinfo2")
def test_trim_heap_returns_freed_memory_and_skips_a_small_heap():
    assert _heap.trim_heap(above=sys.maxsize) is False  # too little free: nothing done
    blocks = [bytearray(1000) for _ in range(200_000)]  # ~200 MB of small blocks
    grown = _rss_mib()
    del blocks
    assert _heap.trim_heap() is True
    assert _rss_mib() < grown - 100  # the freed blocks left the process


def test_trim_heap_does_nothing_without_glibc(monkeypatch):
    monkeypatch.setattr(_heap, "_MALLOC_TRIM", None)
    monkeypatch.setattr(_heap, "_MALLINFO2", None)
    assert _heap.free_heap_bytes() is None
    assert _heap.trim_heap() is None


def test_trim_heap_trims_without_looking_on_an_older_glibc(monkeypatch):
    trims: list[int] = []
    monkeypatch.setattr(_heap, "_MALLOC_TRIM", lambda pad: trims.append(pad) or 1)
    monkeypatch.setattr(_heap, "_MALLINFO2", None)  # glibc < 2.33
    assert _heap.trim_heap(above=sys.maxsize) is True
    assert trims == [0]


@pytest.mark.parametrize("interval, expected", [(60, [1, 2]), (0, [0, 0])])
def test_the_service_trims_every_interval_unless_disabled(
    actors_service, actors_clock, monkeypatch, interval, expected
):
    rounds: list[float] = []
    monkeypatch.setattr(
        service_actor.ServiceActor,
        "trim_memory",
        lambda actor: rounds.append(actor.clock.monotonic()),
    )
    h = actors_service({}, host="h", clock=actors_clock, memory_trim_interval=interval)
    h.advance(59)  # returns once the service handled what fell due
    assert len(rounds) == 0
    h.advance(1)
    assert len(rounds) == expected[0]
    h.advance(60)
    assert len(rounds) == expected[1]


def test_a_trim_round_runs_off_the_actors(actors_service, monkeypatch):
    ran_in: list[str] = []
    monkeypatch.setattr(
        _heap, "trim_heap", lambda: ran_in.append(threading.current_thread().name) or True
    )
    h = actors_service({}, host="h", memory_trim_interval=0)
    assert h.run_in(h.service.name, lambda actor: actor.trim_memory()) is True
    assert ran_in and ran_in[0].startswith("actors-offload-system")
