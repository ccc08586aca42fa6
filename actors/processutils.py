"""`execute()`: run a host command for a driver, safely and with a deadline.

An argument list, never a shell. Output is captured (the last `max_output`
bytes of each stream: memory stays bounded) and decoded. A command that
outlives its timeout is killed with its whole process group. Under the
gevent runtime it uses gevent's subprocess so other actors keep running.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess as std_subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from actors.errors import ProcessExecutionError, ProcessTimeout

__all__ = ["MAX_OUTPUT", "ProcessResult", "execute"]

log = logging.getLogger(__name__)

MAX_OUTPUT = 8 * 1024 * 1024  # bytes of each of stdout and stderr kept by execute()
_CHUNK = 64 * 1024
_REAP_GRACE = 5.0  # seconds to wait for a killed command and its pipes


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
    max_output: int = MAX_OUTPUT,
) -> ProcessResult:
    """Run `cmd` and return its result; raise a typed error on failure.

    `check_exit_code`: True accepts only 0, an iterable lists accepted codes,
    False accepts any. Raises `ProcessExecutionError` (exit code, stdout,
    stderr) or `ProcessTimeout` after killing the process group. Of each of
    stdout and stderr the last `max_output` bytes are kept (the command may
    write more; the rest is read and dropped, and the text says how much).
    """
    if not cmd:
        raise ValueError("execute() needs a command")
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    if max_output < 1:
        raise ValueError("max_output must be positive")
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
    out, err = _Tail(proc.stdout, max_output), _Tail(proc.stderr, max_output)
    workers = [_start(module, out.run), _start(module, err.run)]
    if data is not None:
        workers.append(_start(module, lambda: _feed(proc.stdin, data)))
    try:
        finished = _wait(module, proc, workers, started + timeout)
    except BaseException:  # killed while waiting (a greenlet kill, a Timeout)
        _kill_group(proc)
        _reap(proc, workers)
        raise
    if not finished:
        _kill_group(proc)
        _reap(proc, workers)
        raise ProcessTimeout(args, timeout, out.text(), err.text())
    result = ProcessResult(
        args, proc.returncode, out.text(), err.text(), time.monotonic() - started
    )
    if check_exit_code is not False:
        allowed = {0} if check_exit_code is True else set(check_exit_code)
        if result.exit_code not in allowed:
            raise ProcessExecutionError(args, result.exit_code, result.stdout, result.stderr)
    return result


class _Tail:
    """Reads one pipe to its end, keeping the last `limit` bytes: memory stays bounded."""

    def __init__(self, stream: Any, limit: int) -> None:
        self.stream, self.limit = stream, limit
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.dropped = 0

    def run(self) -> None:
        read = getattr(self.stream, "read1", None) or self.stream.read
        try:
            while chunk := read(_CHUNK):
                self.chunks.append(chunk)
                self.size += len(chunk)
                while self.size - len(self.chunks[0]) >= self.limit:
                    first = self.chunks.popleft()
                    self.size -= len(first)
                    self.dropped += len(first)
        except (OSError, ValueError):  # closed under us: the command was killed
            pass
        finally:
            try:
                self.stream.close()  # at once, not when the Popen is collected
            except OSError:
                pass

    def text(self) -> str:
        data = b"".join(self.chunks)
        cut = max(0, len(data) - self.limit)
        kept = _decode(data[cut:])
        dropped = self.dropped + cut
        return f"[{dropped} earlier bytes not kept]\n{kept}" if dropped else kept


def _feed(stdin: Any, data: bytes) -> None:
    try:
        stdin.write(data)
        stdin.close()
    except (BrokenPipeError, OSError, ValueError):  # the command did not read it all
        pass


class _Worker:
    """A pipe's reader or writer: a greenlet under gevent's subprocess, else a thread."""

    def __init__(self, join: Any, alive: Any, kill: Any) -> None:
        self.join, self.alive, self.kill = join, alive, kill


def _start(module: Any, fn: Any) -> _Worker:
    if module is std_subprocess:
        thread = threading.Thread(target=fn, name="execute-pipe", daemon=True)
        thread.start()
        # A thread cannot be killed: it ends when the killed command's pipe closes.
        return _Worker(thread.join, thread.is_alive, lambda: None)
    import gevent

    greenlet = gevent.spawn(fn)
    return _Worker(greenlet.join, lambda: not greenlet.dead, lambda: greenlet.kill(block=False))


def _wait(module: Any, proc: Any, workers: list[_Worker], deadline: float) -> bool:
    """Wait for the command and its pipes until `deadline`; False if it passed first.

    The pipes can outlive the command: a background child that kept them
    open holds them until it ends, and that is waited for under the same
    deadline (then killed with the group).
    """
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except module.TimeoutExpired:
        return False
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.alive():
            return False
    return True


def _reap(proc: Any, workers: list[_Worker]) -> None:
    """After a kill: collect the exit status and the pipes' last bytes, for at most 5 s."""
    deadline = time.monotonic() + _REAP_GRACE
    try:
        proc.wait(timeout=_REAP_GRACE)
    except Exception:  # e.g. stuck in uninterruptible I/O (a hung mount): give up on it
        log.warning("command %s (pid %s) did not exit after SIGKILL", proc.args, proc.pid)
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.alive():
            worker.kill()


def _kill_group(proc: Any) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:  # gone already, or not ours to signal: the process itself, then
        try:
            proc.kill()
        except OSError:
            pass


def _decode(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")
