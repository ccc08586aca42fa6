"""Instructions a process executes, counted by valgrind's callgrind.

Unlike ops/s and CPU time, an instruction count does not move with the
machine's load: the benchmarks' `--count` modes run a scenario for n and for
3n operations and divide the difference by 2n, which leaves out start-up,
imports and stop.
"""

from __future__ import annotations

import subprocess

VALGRIND = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
"""Put before a command to count its instructions (written to its stderr)."""


def collected(stderr: str) -> int:
    """The instruction count valgrind wrote to a counted process's stderr."""
    lines = [line for line in stderr.splitlines() if "Collected :" in line]
    if not lines:
        raise RuntimeError(f"no instruction count from valgrind: {stderr[-800:]}")
    return int(lines[-1].split(":")[-1])


def count(command: list[str], timeout: float) -> int:
    """Run `command` under callgrind; the instructions it executed (all its threads)."""
    done = subprocess.run(
        [*VALGRIND, *command], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the counted command failed: {done.stderr[-800:]}")
    return collected(done.stderr)
