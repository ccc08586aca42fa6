"""Run a real `actorsd` subprocess for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from actors.testing import wait_until

T = TypeVar("T")

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

    def endpoint() -> str | None:
        for line in log.read_text().splitlines():
            if "listening on" in line:
                return line.split("listening on ", 1)[1].split(";")[0].split(" ")[0]
        if proc.poll() is not None:
            raise AssertionError("actorsd exited")  # no use waiting on
        return None

    try:  # polling a log file: there is nothing to wait on
        return proc, wait_until(endpoint, timeout=30, interval=0.05, message="actorsd to listen")
    except AssertionError:  # a WaitTimeout too
        proc.kill()
        raise AssertionError(f"actorsd did not start:\n{log.read_text()}") from None


def wait_for(predicate: Callable[[], T], what: str, timeout: float = 30.0) -> T:
    """`wait_until` at a daemon's pace: polling its log or its journal over RPC."""
    return wait_until(predicate, timeout, interval=0.05, message=what)


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
