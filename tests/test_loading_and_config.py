"""Import paths and configuration fail early with the file, key and reason."""

from __future__ import annotations

import textwrap

import pytest

from actors import ConfigError, DriverActor, LoadError, ManagerActor, Service, load_config
from actors.loading import load_object
from actors.testing import FakeDriver
from tests.support import ResourceManager, backend


@pytest.mark.parametrize("path", ["tests.support:ResourceManager", "tests.support.ResourceManager"])
def test_load_object_accepts_colon_and_dotted_forms(path):
    assert load_object(path, kind=ManagerActor) is ResourceManager


@pytest.mark.parametrize(
    ("path", "kind", "reason"),
    [
        ("no_such_pkg.mod:Thing", "module_not_found", "no_such_pkg"),
        ("tests.support:Nope", "attribute_missing", "Nope"),
        ("tests.support:backend", "wrong_kind", "not a subclass of ManagerActor"),
        ("actors.drivers.fake:FakeDriver", "wrong_kind", "not a subclass of ManagerActor"),
        ("justaname", "bad_path", "expected"),
        ("", "bad_path", "expected"),
    ],
)
def test_load_object_errors_say_what_went_wrong(path, kind, reason):
    with pytest.raises(LoadError) as err:
        load_object(path, kind=ManagerActor)
    assert err.value.kind == kind
    assert reason in str(err.value)
    assert err.value.path == path


def test_load_object_reports_an_import_failing_inside_the_module(tmp_path, monkeypatch):
    (tmp_path / "broken_mod.py").write_text("import does_not_exist_either\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(LoadError) as err:
        load_object("broken_mod:X")
    assert err.value.kind == "import_failed"


def _write(tmp_path, text: str):
    path = tmp_path / "service.toml"
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """
    host = "node1"
    runtime = "threading"
    enabled_backends = ["b1"]

    [supervision]
    strategy = "rest_for_one"
    max_restarts = 3

    [backends.b1]
    manager = "tests.support:ResourceManager"
    driver = "actors.drivers.fake:FakeDriver"
    options = { capacity = 7 }
"""


def test_config_file_environment_and_arguments_in_that_order(tmp_path, monkeypatch):
    path = _write(tmp_path, GOOD)
    config = load_config(path)
    assert config.host == "node1" and config.supervision.max_restarts == 3
    assert config.supervision.strategy == "rest_for_one"
    monkeypatch.setenv("ACTORS_HOST", "from-env")
    monkeypatch.setenv("ACTORS_SUPERVISION__MAX_RESTARTS", "9")
    config = load_config(path)
    assert config.host == "from-env" and config.supervision.max_restarts == 9
    assert load_config(path, host="from-kwargs").host == "from-kwargs"


def test_service_from_file_runs(tmp_path):
    with Service.from_file(_write(tmp_path, GOOD)) as service:
        assert service.call("b1", "create", {"resource_id": "a", "size": 7})["size"] == 7


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("mailbox_capacity = 0\n", "mailbox_capacity", "greater than or equal to 1"),
        ('runtime = "fibers"\n', "runtime", "'gevent' or 'threading'"),
        ('colour = "blue"\n', "colour", "Extra inputs are not permitted"),
        ('enabled_backends = ["ghost"]\n', None, "undefined backends: ghost"),
        ('[supervision]\nstrategy = "all_at_once"\n', "supervision.strategy", "one_for_one"),
        ("[supervision.backoff]\ninitial = 10\nmaximum = 1\n", "supervision", "maximum"),
        ('[backends.b1]\nmanager = "x:Y"\n', "backends.b1.driver", "Field required"),
    ],
)
def test_invalid_config_names_file_key_and_reason(tmp_path, text, key, reason):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.file == str(path)
    if key is not None:
        assert err.value.key == key
    assert reason in err.value.reason
    assert str(path) in str(err.value)
    if key is not None:
        assert str(err.value).count(key) == 1  # named once, in front: file:key: reason


def test_broken_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "host = \n"))
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")


def test_driver_options_are_validated_when_the_backend_starts(tmp_path):
    path = _write(tmp_path, GOOD.replace("capacity = 7", "capacity = -1, colour = 1"))
    with pytest.raises(ConfigError) as err:
        Service.from_file(path).start()
    assert err.value.key == "backends.b1.options.capacity"
    assert "colour" in err.value.reason
    assert err.value.file == str(path)


def test_manager_options_are_validated_with_the_configuration(tmp_path):
    # Not only in init_host: a bad value there made the manager crash and restart
    # until the service gave up, and a reload that added it stopped a healthy daemon.
    from actors.service_actor import plan_backends

    path = _write(
        tmp_path,
        """
        host = "h"
        enabled_backends = ["s"]
        [backends.s]
        manager = "share_service.manager:ShareManager"
        driver = "share_service.drivers.fake:FakeShareDriver"
        manager_options = { quota_gb = "lots" }
        """,
    )
    with pytest.raises(ConfigError) as err:
        plan_backends(load_config(path), file=str(path))
    assert err.value.key == "backends.s.manager_options.quota_gb"
    assert err.value.file == str(path) and "quota_gb" not in err.value.reason  # said once
    with pytest.raises(ConfigError):
        Service.from_file(path).start()


def test_bad_import_path_fails_start_with_load_error():
    from actors import ServiceConfig

    config = ServiceConfig(
        host="h",
        enabled_backends=["b1"],
        backends={"b1": backend(driver="tests.support:ResourceManager")},
    )
    with pytest.raises(LoadError) as err:
        Service(config).start()
    assert err.value.kind == "wrong_kind" and "DriverActor" in str(err.value)
    assert str(err.value).startswith("backends.b1.driver: ")  # where it was configured


def test_driver_contract_is_abstract():
    class Incomplete(DriverActor):
        def do_setup(self) -> None: ...

    with pytest.raises(TypeError, match="abstract"):
        Incomplete(FakeDriver.Options(), host="h", backend="b")  # type: ignore[abstract]


def test_a_manager_cannot_replace_the_framework_s_own_methods():
    from actors import ManagerActor

    with pytest.raises(TypeError, match="run_operation: reserved"):

        class Sneaky(ManagerActor):
            def run_operation(self, *args: object) -> None:
                pass


def test_a_bad_environment_variable_is_named_not_the_file(tmp_path, monkeypatch):
    path = _write(tmp_path, 'host = "h"\n')
    monkeypatch.setenv("ACTORS_MAILBOX_CAPACITY", "0")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.file == "$ACTORS_MAILBOX_CAPACITY" and err.value.key == "mailbox_capacity"
    monkeypatch.delenv("ACTORS_MAILBOX_CAPACITY")
    monkeypatch.setenv("ACTORS_ENABLED_BACKENDS", "notjson")  # not even JSON: one line too
    with pytest.raises(ConfigError, match="enabled_backends") as err:
        load_config(path)
    assert err.value.file == "environment"
    monkeypatch.delenv("ACTORS_ENABLED_BACKENDS")
    with pytest.raises(ConfigError) as err:
        load_config(path, mailbox_capacity=-1)
    assert err.value.file == "arguments"


@pytest.mark.parametrize("bind", ["tcp://127.0.0.1:70000", "tcp://127.0.0.1", "tcp://h:port"])
def test_a_tcp_bind_needs_a_port_zeromq_would_not_wrap(tmp_path, bind):
    # ZeroMQ binds port 70000 as 4464 without a word.
    with pytest.raises(ConfigError, match="port 0-65535"):
        load_config(transport={"bind": bind})
    assert load_config(transport={"bind": "tcp://127.0.0.1:*"}).transport.bind.endswith(":*")
