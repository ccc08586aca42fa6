"""The start phases run in order, and a backend failing one does not stop the others."""

from __future__ import annotations

import itertools

import pytest

from actors.testing import wait_until
from tests import support
from tests.support import backend

_ids = itertools.count()
PHASED = backend("tests.support:PhaseManager")


@pytest.fixture(autouse=True)
def _clear_phases() -> None:
    support.PHASES.clear()


def _wait_for_phase(service, entry: str) -> None:
    # The periodic task runs on the actors' schedule.
    wait_until(
        lambda: entry in support.PHASES,
        timeout=10,
        message=lambda: f"{entry!r} to happen (so far: {support.PHASES})",
    )


def test_phases_run_in_order_rows_then_init_host_then_transport_then_rpc_then_timers(
    make_service,
):
    service = make_service({"a": PHASED}, start=False, report_interval=1, service_down_time=5)
    service.start(timeout=10, defer_ready=True)
    # Phases 1 and 2: the row exists (not yet heartbeated) and init_host ran; nothing else.
    assert support.PHASES == ["init_host a"]
    assert service.registry is not None
    [row] = service.registry.services(host="h")
    assert (row.state, row.report_count, row.is_up) == ("starting", 0, False)
    # Phase 3: the transport accepts requests before init_host_with_rpc runs.
    server = service.serve(f"inproc://phases-{next(_ids)}")
    support.PHASES.append("serving")
    # Phases 4 and 5.
    service.ready(timeout=10)
    _wait_for_phase(service, "periodic a")
    assert support.PHASES == ["init_host a", "serving", "init_host_with_rpc a", "periodic a"]
    assert service.actor is not None
    service.system.handle(service.name).ask("report", timeout=10).result()
    [row] = service.registry.services(host="h")
    assert row.is_up and row.report_count >= 1 and row.endpoint == server.endpoint


def test_a_backend_failing_init_host_with_rpc_is_down_and_the_others_serve(make_service):
    service = make_service(
        {"good": PHASED, "broken": PHASED}, report_interval=1, service_down_time=5
    )
    assert list(service.backend_errors) == ["h@broken"]
    assert "cannot announce myself" in str(service.backend_errors["h@broken"])
    _wait_for_phase(service, "periodic good")
    assert "periodic broken" not in support.PHASES
    assert service.call("good", "status")["status_calls"] == 1
    service.system.handle(service.name).ask("report", timeout=10).result()
    assert service.registry is not None
    rows = {r.backend: r for r in service.registry.services(host="h")}
    assert rows["good"].is_up and not rows["broken"].is_up


def test_a_manager_restarted_after_start_serves_at_once(make_harness):
    h = make_harness({"a": PHASED})
    _wait_for_phase(h.service, "periodic a")
    support.PHASES.clear()
    h.crash("a")
    h.wait_running("a")
    _wait_for_phase(h.service, "periodic a")
    assert support.PHASES == ["init_host a", "init_host_with_rpc a", "periodic a"]


def test_a_registry_schema_newer_than_this_version_fails_the_start(make_service):
    """A host upgraded first moved the schema on: this version refuses to run on
    tables it does not know, with the reason, rather than start half-registered."""
    from sqlalchemy import text

    from actors.registry import RegistryError

    first = make_service({"a": PHASED}, report_interval=1, service_down_time=5)
    assert first.registry is not None
    with first.registry.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00d_from_the_future'"))
    first.stop(timeout=10)
    again = make_service({"a": PHASED}, start=False, report_interval=1, service_down_time=5)
    with pytest.raises(RegistryError, match="cannot upgrade"):
        again.start(timeout=10)
