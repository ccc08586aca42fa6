"""Test your managers and drivers at actor level.

The pytest plugin (`actors.testing.plugin`, registered through the `pytest11`
entry point) provides fixtures; `ServiceHarness` is the object they hand out.
`actors.testing.conformance` holds the mechanism of driver conformance suites
(`DriverContract`); it imports pytest, so it is not imported here.
See docs/testing.md.
"""

from actors.drivers.fake import FakeController, FakeDriver
from actors.runtime import VirtualClock
from actors.testing._harness import LeakError, ServiceHarness
from actors.testing._recorder import Fault, Received, Recorder
from actors.testing._wait import WaitTimeout, wait_until

__all__ = [
    "FakeController",
    "FakeDriver",
    "Fault",
    "LeakError",
    "Received",
    "Recorder",
    "ServiceHarness",
    "VirtualClock",
    "WaitTimeout",
    "wait_until",
]
