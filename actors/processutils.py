"""`execute()`: run a host command for a driver, safely and with a deadline.

An argument list, never a shell. Output is captured and decoded. A command
that outlives its timeout is killed with its whole process group. Under the
gevent runtime it uses gevent's subprocess so other actors keep running.
"""

from __future__ import annotations

import os
import signal
import subprocess as std_subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from actors.errors import ProcessExecutionError, ProcessTimeout

__all__ = ["ProcessResult", "execute"]


@dataclass(frozen=True)
class ProcessResult:
    """What a finished command produced."""

    cmd: list[str]
    exit_code: int
    stdout: str
    stderr: str
    duration: float


def _subprocess_module() -> ModuleType:
    gevent_module = sys.modules.get("gevent")
    if gevent_module is not None and isinstance(gevent_module.getcurrent(), gevent_module.Greenlet):
        import gevent.subprocess

        return gevent.subprocess  # type: ignore[no-any-return]
    return std_subprocess


def execute(
    *cmd: str | os.PathLike[str],
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    cwd: str | os.PathLike[str] | None = None,
    input: str | bytes | None = None,
    check_exit_code: bool | Iterable[int] = True,
) -> ProcessResult:
    """Run `cmd` and return its result; raise a typed error on failure.

    `check_exit_code`: True accepts only 0, an iterable lists accepted codes,
    False accepts any. Raises `ProcessExecutionError` (exit code, stdout,
    stderr) or `ProcessTimeout` after killing the process group.
    """
    if not cmd:
        raise ValueError("execute() needs a command")
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    args = [os.fspath(part) for part in cmd]
    full_env: dict[str, str] | None = None
    if env is not None or not inherit_env:
        full_env = dict(os.environ) if inherit_env else {}
        full_env.update(env or {})
    data = input.encode() if isinstance(input, str) else input
    module: Any = _subprocess_module()
    started = time.monotonic()
    try:
        proc = module.Popen(
            args,
            stdin=module.PIPE if data is not None else module.DEVNULL,
            stdout=module.PIPE,
            stderr=module.PIPE,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        raise ProcessExecutionError(args, 127, "", f"{type(exc).__name__}: {exc}") from exc
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except module.TimeoutExpired:
        _kill_group(proc)
        try:
            out, err = proc.communicate(timeout=5.0)
        except Exception:
            out, err = b"", b""
        raise ProcessTimeout(args, timeout, _decode(out), _decode(err)) from None
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    result = ProcessResult(
        args, proc.returncode, _decode(out), _decode(err), time.monotonic() - started
    )
    if check_exit_code is not False:
        allowed = {0} if check_exit_code is True else set(check_exit_code)
        if result.exit_code not in allowed:
            raise ProcessExecutionError(args, result.exit_code, result.stdout, result.stderr)
    return result


def _kill_group(proc: Any) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except ProcessLookupError:
            pass


def _decode(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")
