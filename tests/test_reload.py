"""Reloading the configuration of a running service (SIGHUP in actorsd)."""

from __future__ import annotations

import signal
import textwrap
from pathlib import Path

import pytest

from actors import ConfigError, NotFound, ServiceConfig
from tests.daemon import running_actorsd, wait_for
from tests.support import backend
from transport.client import RpcClient


def _config(service, **changes) -> ServiceConfig:
    return ServiceConfig.model_validate({**service.config.model_dump(), **changes})


def test_reload_starts_added_and_stops_removed_backends(make_service):
    service = make_service({"a": backend(), "b": backend()})
    service.call("a", "create", {"resource_id": "r1"})
    backends = {"b": backend(), "c": backend()}
    changes = service.reload(_config(service, enabled_backends=["b", "c"], backends=backends))
    assert changes == {"started": ["h@c"], "stopped": ["h@a"], "needs_restart": []}
    assert service.actor is not None and service.actor.managers() == ["h@b", "h@c"]
    assert service.call("c", "create", {"resource_id": "r2"}) == {"id": "r2", "size": 1}
    with pytest.raises(NotFound):
        service.call("a", "create", {"resource_id": "r3"})
    names = service.system.directory.names()
    assert "h@a" not in names and "h@a/driver" not in names
    assert service.registry is not None
    service.system.handle(service.name).ask("report", timeout=10).result()
    rows = {r.backend: r for r in service.registry.services(host="h")}
    assert rows["a"].state == "stopped" and rows["c"].is_up and rows["b"].is_up


def test_a_backend_removed_while_the_rows_are_to_be_registered_again_is_marked_stopped(
    make_service,
):
    """After an outage the service registers its rows again (it knows no ids until
    a round succeeds): a backend removed meanwhile must still be marked stopped."""
    service = make_service({"a": backend(), "b": backend()})
    assert service.registry is not None and service.actor is not None
    handle = service.system.handle(service.name)
    handle.ask("report", timeout=10).result()
    service.actor._heartbeat.ids = None  # what a round that met an outage leaves
    service.reload(_config(service, enabled_backends=["b"], backends={"b": backend()}))
    handle.ask("report", timeout=10).result()
    rows = {r.backend: r for r in service.registry.services(host="h")}
    assert rows["a"].state == "stopped" and not rows["a"].is_up and rows["b"].is_up


def test_reload_reports_what_needs_a_restart_and_applies_the_rest(make_service):
    service = make_service({"a": backend()}, report_interval=10, service_down_time=60)
    changed = {"a": backend(options={"capacity": 5})}
    changes = service.reload(
        _config(service, topic="elsewhere", report_interval=2.0, backends=changed)
    )
    assert changes["needs_restart"] == ["topic", "backends.a"]
    assert service.config.topic == "actors"  # left as it runs
    assert service.config.report_interval == 2.0  # applied
    assert service.config.backends["a"].options == {}


def test_a_reload_that_does_not_validate_changes_nothing(make_service, tmp_path):
    path = tmp_path / "service.toml"
    path.write_text('host = "h"\nenabled_backends = ["missing"]\n')
    service = make_service({"a": backend()})
    service.config_file = str(path)
    with pytest.raises(ConfigError, match="missing"):
        service.reload()
    assert service.actor is not None and service.actor.managers() == ["h@a"]


def test_a_reload_refuses_what_only_a_restart_would_apply_if_it_is_broken(make_service, tmp_path):
    # A running backend whose new import path does not load, or a new backend
    # with bad manager options: refused now, not at the restart the reload asks for.
    from actors.errors import LoadError

    service = make_service({"a": backend()})
    path = tmp_path / "service.toml"
    service.config_file = str(path)
    path.write_text(
        'host = "h"\nenabled_backends = ["a"]\n[backends.a]\n'
        'manager = "tests.support:NoSuchManager"\ndriver = "actors.drivers.fake:FakeDriver"\n'
    )
    with pytest.raises(LoadError, match="NoSuchManager"):
        service.reload()
    path.write_text(
        'host = "h"\nenabled_backends = ["a", "s"]\n'
        '[backends.a]\nmanager = "tests.support:ResourceManager"\n'
        'driver = "actors.drivers.fake:FakeDriver"\n'
        '[backends.s]\nmanager = "share_service.manager:ShareManager"\n'
        'driver = "share_service.drivers.fake:FakeShareDriver"\n'
        "manager_options = { quota_gb = 0 }\n"
    )
    with pytest.raises(ConfigError) as err:
        service.reload()
    assert err.value.key == "backends.s.manager_options.quota_gb"
    assert service.actor is not None and service.actor.managers() == ["h@a"]


def test_a_reload_of_the_file_keeps_the_overrides_given_at_start(tmp_path):
    from actors import Service

    path = tmp_path / "service.toml"
    path.write_text(_toml(tmp_path, ["a"]))
    service = Service(config_file=path, config_overrides={"runtime": "threading"}).start()
    try:
        assert service.config.runtime == "threading"
        changes = service.reload()
        assert changes["needs_restart"] == []  # not "runtime": the override still holds
    finally:
        assert service.stop(10)


def _toml(tmp_path: Path, backends: list[str]) -> str:
    sections = "".join(
        f"""
        [backends.{name}]
        manager = "actors.examples.files:DirectoryManager"
        driver = "actors.examples.files:DirectoryDriver"
        options = {{ root = "{tmp_path / name}" }}
        """
        for name in backends
    )
    return textwrap.dedent(
        f"""
        host = "node1"
        state_dir = "{tmp_path / "state"}"
        enabled_backends = {backends!r}
        """
    ) + textwrap.dedent(sections)


@pytest.mark.parametrize("runtime", ["gevent", "threading"])
def test_sighup_adds_and_removes_a_backend_in_a_running_daemon(tmp_path, runtime):
    config = tmp_path / "service.toml"
    config.write_text(_toml(tmp_path, ["one"]))
    log = tmp_path / "log"
    with running_actorsd(config, log, runtime) as (proc, endpoint):
        with RpcClient(endpoint, timeout=10) as client:
            client.call("one", "create", {"name": "x"})
            config.write_text(_toml(tmp_path, ["two"]))
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "actorsd: reloaded" in log.read_text(), "the reload")
            assert client.ping()["managers"] == ["node1@two"]
            assert client.call("two", "create", {"name": "y"})["name"] == "y"
            with pytest.raises(NotFound):
                client.call("one", "create", {"name": "z"})
            config.write_text("not = [valid")
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "reload refused" in log.read_text(), "the refused reload")
            assert client.call("two", "list_items")["count"] == 1  # still serving
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert (tmp_path / "two" / "y").is_dir() and not (tmp_path / "one" / "z").exists()


def test_a_reload_that_outlasts_its_caller_is_still_followed_by_the_service(
    make_service, monkeypatch
):
    # The caller's deadline passes while the ServiceActor is applying the
    # change: the caller hears DeadlineExceeded, the change is applied in full
    # all the same, and `service.config` follows it once it is.
    from actors.errors import DeadlineExceeded
    from actors.service_actor import ServiceActor

    service = make_service({"a": backend()}, report_interval=10, service_down_time=60)
    release = service.system.runtime.event()
    entered = service.system.runtime.event()
    original = ServiceActor.reconfigure

    def slow_reconfigure(self, config, plans):
        changes = original(self, config, plans)
        entered.set()
        assert release.wait(10), "the test never released the reload"
        return changes

    monkeypatch.setattr(ServiceActor, "reconfigure", slow_reconfigure)
    with pytest.raises(DeadlineExceeded):
        service.reload(_config(service, report_interval=3.0), timeout=0.5)
    assert entered.is_set()
    assert service.config.report_interval == 10  # not yet: the actor has not answered
    release.set()
    # Answered after the reload's reply (the same mailbox, in order):
    assert service.system.handle(service.name).ask("managers", timeout=10).result() == ["h@a"]
    assert service.config.report_interval == 3.0
