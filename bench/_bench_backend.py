"""The backend measured by `bench_ask.py`: an echo manager over an echo driver.

Loaded by import path (`bench._bench_backend:EchoManager`) like any user backend;
`bench_ask.py` puts the repository root on `sys.path` so that path resolves
when the benchmark is run as a script.
"""

from __future__ import annotations

from typing import Any

from actors import ManagerActor, rpc
from actors.drivers.base import DriverActor, operation


class EchoDriver(DriverActor):
    """A driver whose only operation returns its argument."""

    def do_setup(self) -> None:
        pass

    def check_for_setup_error(self) -> None:
        pass

    def get_stats(self) -> dict[str, Any]:
        return {"driver": "echo"}

    @operation(idempotent=True)
    def echo(self, value: Any) -> Any:
        return value


class EchoManager(ManagerActor):
    """One RPC method; the reply follows when the driver's future resolves."""

    @rpc
    def echo(self, value: int) -> Any:
        return self.driver.echo(value)
