"""docs/testing.md is executed: its worked example runs as a user's project would."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOC = Path(__file__).resolve().parent.parent / "docs" / "testing.md"
BLOCK = re.compile(r"<!-- file: (?P<name>[\w./]+) -->\s*```python\n(?P<code>.*?)```", re.S)


def test_the_worked_example_passes(pytester: pytest.Pytester) -> None:
    files = {m["name"]: m["code"] for m in BLOCK.finditer(DOC.read_text())}
    assert {
        "notes_backend.py",
        "test_notes.py",
        "notes_kind.py",
        "notes_contract.py",
        "test_notes_conformance.py",
        "test_share_conformance.py",
    } <= set(files)
    for name, code in files.items():
        pytester.makepyfile(**{name.removesuffix(".py"): code})
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    # 8 of the notes example; the conformance suites on both runtimes: the notes
    # contract (5 + 3 tests) for 2 drivers, the share contract (5 + 17) for 2.
    result.assert_outcomes(passed=8 + 2 * 2 * (5 + 3) + 2 * 2 * (5 + 17))


def test_a_leaking_test_fails(pytester: pytest.Pytester) -> None:
    """The fixture fails a test that leaves an actor running."""
    pytester.makepyfile(
        test_leak="""
        from actors import ManagerActor, rpc
        from actors.testing import FakeDriver, ServiceHarness

        class Stuck(ManagerActor):
            def on_stop(self):
                import time
                time.sleep(5)  # refuses to stop in time

            @rpc
            def ping2(self):
                return 1

        def test_leaks(actors_service):
            h = actors_service({"b": {"manager": Stuck, "driver": FakeDriver}},
                               supervision={"shutdown_timeout": 0.3})
            assert h.call("b", "ping2") == 1
        """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*still running*"])
