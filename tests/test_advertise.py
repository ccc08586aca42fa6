"""What a service publishes as its endpoint: `advertise`, never a wildcard."""

from __future__ import annotations

import pytest

from actors import ConfigError
from actors._advertise import advertised_endpoint, is_wildcard
from actors.config import TransportConfig


def test_a_wildcard_bind_needs_an_advertised_address() -> None:
    for bind in ("tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://[::]:5555"):
        assert is_wildcard(bind)
        with pytest.raises(ConfigError, match="listens on every interface"):
            advertised_endpoint(bind, None)
    assert not is_wildcard("tcp://10.0.0.5:5555") and not is_wildcard("ipc:///run/a.sock")
    assert advertised_endpoint("tcp://10.0.0.5:5555", None) == "tcp://10.0.0.5:5555"


def test_the_advertised_port_is_the_bound_one_unless_given() -> None:
    assert advertised_endpoint("tcp://0.0.0.0:41234", "tcp://10.0.0.5") == "tcp://10.0.0.5:41234"
    assert advertised_endpoint("tcp://0.0.0.0:41234", "tcp://10.0.0.5:0") == "tcp://10.0.0.5:41234"
    assert (
        advertised_endpoint("tcp://0.0.0.0:41234", "tcp://gw.example:80") == "tcp://gw.example:80"
    )
    assert advertised_endpoint("tcp://[::]:7", "tcp://[fd00::5]") == "tcp://[fd00::5]:7"


def test_a_bad_advertise_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="is a wildcard"):
        advertised_endpoint("tcp://0.0.0.0:1", "tcp://0.0.0.0:1")
    with pytest.raises(ConfigError, match="must be a tcp://"):
        advertised_endpoint("tcp://0.0.0.0:1", "10.0.0.5:1")
    with pytest.raises(ValueError, match="is a wildcard"):
        TransportConfig(bind="tcp://0.0.0.0:5555", advertise="tcp://*:5555")
    assert TransportConfig(bind="tcp://0.0.0.0:5555", advertise="tcp://10.0.0.5").advertise


def test_the_connection_heartbeat_is_configured_and_reaches_the_server(tmp_path) -> None:
    from actors import Service, ServiceConfig

    with pytest.raises(ValueError, match=r"greater than or equal to 0\.1"):
        TransportConfig(heartbeat=0.05)
    config = ServiceConfig(
        host="hb",
        registry=False,
        state_dir=tmp_path,
        enabled_backends=[],
        transport=TransportConfig(heartbeat=1.0),
    )
    service = Service(config, runtime="threading")
    service.start()
    try:
        server = service.serve("tcp://127.0.0.1:0")
        assert server.heartbeat == 1.0
        assert service.serve("tcp://127.0.0.1:0", heartbeat=2.5).heartbeat == 2.5
    finally:
        assert service.stop(10)
