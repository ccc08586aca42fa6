"""Run a real `actorsd` subprocess for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def start_actorsd(
    config: Path | None,
    log: Path,
    runtime: str,
    env: dict[str, str] | None = None,
    *,
    cwd: Path | None = None,
    bind: str | None = "tcp://127.0.0.1:0",
    extra: tuple[str, ...] = (),
) -> tuple[subprocess.Popen[bytes], str]:
    """Start actorsd (its log in a file, so a full pipe can never stall it); its endpoint.

    Without `config` it runs the embedded default, with its state in `cwd`;
    with `bind=None` it binds where the configuration says.
    """
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bin" / "actorsd"),
                *(["--config", str(config)] if config is not None else []),
                "--runtime",
                runtime,
                *(["--bind", bind] if bind is not None else []),
                *extra,
            ],
            stderr=out,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            cwd=cwd,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if "listening on" in line:
                return proc, line.split("listening on ", 1)[1].split(";")[0].split(" ")[0]
        if proc.poll() is not None:
            break
        time.sleep(0.05)  # polling a log file: there is nothing to wait on
    proc.kill()
    raise AssertionError(f"actorsd did not start:\n{log.read_text()}")


def wait_for(predicate: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)  # polling the daemon's journal over RPC
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def running_actorsd(
    config: Path | None,
    log: Path,
    runtime: str,
    env: dict[str, str] | None = None,
    *,
    cwd: Path | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`start_actorsd` for a block; whatever happens in it, the daemon is gone after."""
    proc, endpoint = start_actorsd(config, log, runtime, env, cwd=cwd)
    try:
        yield proc, endpoint
    except BaseException:
        # pytest shows captured stderr with a failure: the daemon's side of it.
        print(f"--- actorsd log ({log}), last 200 lines ---", file=sys.stderr)
        print("\n".join(log.read_text(errors="replace").splitlines()[-200:]), file=sys.stderr)
        raise
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
