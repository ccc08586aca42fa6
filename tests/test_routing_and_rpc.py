"""Requests reach managers by target name, and only through the @rpc allowlist."""

from __future__ import annotations

import pytest

from actors import (
    ActorCrashed,
    InvalidArguments,
    MethodNotAllowed,
    NotFound,
    RemoteError,
    UnsupportedVersion,
)
from tests.support import backend


def test_routes_by_full_name_and_by_backend(make_harness):
    service = make_harness({"b1": backend(), "b2": backend()})
    service.call("h@b1", "create", {"resource_id": "one"})
    service.call("b2", "create", {"resource_id": "two"})
    assert service.call("b1", "get", {"resource_id": "one"}) == {"id": "one", "size": 1}
    assert service.call("h@b2", "get", {"resource_id": "two"}) == {"id": "two", "size": 1}
    # each backend has its own driver: b1 does not know b2's resource
    with pytest.raises(Exception, match="does not exist"):
        service.call("b1", "get", {"resource_id": "two"})


def test_service_status_carries_the_same_service_map_as_ping(make_harness):
    """§7: `$service.status`'s "service" is ping's info, protocol included."""
    service = make_harness()
    pong = service.client.ping(timeout=5)
    status = service.call("$service", "status")
    assert status["service"]["protocol"] == 1
    assert status["service"] == pong


def test_unknown_target_is_not_found(make_harness):
    service = make_harness()
    with pytest.raises(NotFound) as err:
        service.call("h@nope", "ping")
    assert err.value.target == "h@nope"


@pytest.mark.parametrize(
    "method",
    [
        "not_exposed",
        "_private",
        "__init__",
        "__class__",
        "init_host",
        "then",
        "on_start",
        "resolve_call",
        "child_specs",
        "driver",
        "missing",
        "a.b",
    ],
)
def test_only_rpc_methods_are_reachable(make_harness, method):
    service = make_harness()
    with pytest.raises(MethodNotAllowed) as err:
        service.call("b1", method)
    assert err.value.method == method
    # the manager is unharmed
    assert service.call("b1", "ping")["name"] == "h@b1"


def test_an_empty_method_name_is_refused_by_the_wire(make_harness):
    from transport.errors import ProtocolError

    service = make_harness()
    with pytest.raises(ProtocolError, match="method"):
        service.call("b1", "")


def test_arguments_are_validated_against_type_hints(make_harness):
    service = make_harness()
    with pytest.raises(InvalidArguments) as err:
        service.call("b1", "create", {"resource_id": "r", "size": "large"})
    assert "size" in err.value.reason
    with pytest.raises(InvalidArguments, match=r"(?i)missing"):
        service.call("b1", "create", {})
    with pytest.raises(InvalidArguments, match=r"(?i)unexpected"):
        service.call("b1", "create", {"resource_id": "r", "colour": "red"})
    assert service.call("b1", "create", {"resource_id": "r", "size": 2})["size"] == 2
    # A number is a number: lax coercion would take True for 1 and "3" for 3.
    for wrong in (True, "3", b"3"):
        with pytest.raises(InvalidArguments, match="size: expected an integer"):
            service.call("b1", "create", {"resource_id": "r2", "size": wrong})


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("1.0", True),
        ("1.2", True),
        ("1.3", False),
        ("2.0", False),
        ("0.9", False),
        ("x", False),
        ("\uff11.\uff10", False),  # full-width digits are not version digits
        ("01.0", True),
        (None, True),
    ],
)
def test_rpc_version_same_major_and_minor_not_above(make_harness, version, ok):
    service = make_harness()
    if ok:
        assert service.call("b1", "create", {"resource_id": "r"}, version=version)["id"] == "r"
    else:
        with pytest.raises(UnsupportedVersion) as err:
            service.call("b1", "create", {"resource_id": "r"}, version=version)
        assert err.value.supported == "1.2"


def test_a_method_is_not_served_to_clients_of_an_older_version(make_harness):
    service = make_harness()
    with pytest.raises(UnsupportedVersion) as err:
        service.call("b1", "status", version="1.1")  # status appeared in 1.2
    assert err.value.needs == "1.2"
    assert service.call("b1", "status", version="1.2")["status_calls"] == 1
    # built-ins answer whatever version the client speaks
    assert service.call("b1", "ping", version="1.0")["name"] == "h@b1"


def test_errors_from_rpc_methods_go_back_to_the_caller(make_harness):
    service = make_harness()
    # over the wire a ValueError is not on the allowlist: it arrives as data
    with pytest.raises(RemoteError) as err:
        service.call("b1", "fail", {"message": "bad input"})
    assert err.value.type_name == "ValueError" and "bad input" in err.value.remote_message
    assert service.call("b1", "ping")["backend"] == "b1"
    assert service.status()[1]["restarts"] == 0  # an error is not a crash


def test_errors_from_rpc_methods_in_process_keep_their_type(make_service):
    service = make_service()
    with pytest.raises(ValueError, match="bad input"):
        service.call("b1", "fail", {"message": "bad input"})


def test_describe_lists_the_allowlist(make_harness):
    service = make_harness()
    described = service.call("b1", "describe")
    names = {m["name"] for m in described["methods"]}
    assert {"create", "create_and_count", "status", "ping", "describe"} <= names
    assert "not_exposed" not in names
    since = {m["name"]: m["since"] for m in described["methods"]}
    assert since["create_and_count"] == "1.1"


def test_rpc_decorator_refuses_versions_above_the_class():
    from actors import ManagerActor, rpc

    with pytest.raises(TypeError, match=r"serves RPC API 1\.0"):

        class TooNew(ManagerActor):
            @rpc(version="1.5")
            def later(self) -> None: ...


def test_overriding_without_rpc_removes_exposure(make_harness):
    from actors import ManagerActor

    class Hidden(ManagerActor):
        def describe(self):  # type: ignore[override]
            return "private now"

    assert "describe" not in Hidden.rpc_methods
    assert "ping" in Hidden.rpc_methods


def test_a_crashing_rpc_method_fails_fast_with_a_typed_error(make_harness):
    service = make_harness()
    with pytest.raises(ActorCrashed) as err:
        service.call("b1", "crash", {"reason": "boom"}, timeout=5)
    assert "boom" in err.value.reason
