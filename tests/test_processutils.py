"""execute(): argument lists, deadlines, typed errors; never blocks other actors."""

from __future__ import annotations

import sys
import time

import pytest

from actors import ProcessExecutionError, ProcessTimeout
from actors.actor import BaseActor
from actors.processutils import execute
from actors.system import ActorSystem
from actors.testing import wait_until


def test_success_captures_output_and_uses_no_shell():
    result = execute("echo", "hello; rm -rf /", timeout=10)
    assert result.exit_code == 0
    assert result.stdout == "hello; rm -rf /\n"


def test_environment_input_and_cwd(tmp_path):
    result = execute(
        sys.executable,
        "-c",
        "import os,sys; print(os.environ['GREETING'], os.getcwd(), sys.stdin.read())",
        env={"GREETING": "hi"},
        cwd=tmp_path,
        input="from stdin",
        timeout=10,
    )
    assert result.stdout.split() == ["hi", str(tmp_path), "from", "stdin"]


def test_non_zero_exit_is_a_typed_error_with_code_and_stderr():
    with pytest.raises(ProcessExecutionError) as err:
        execute(sys.executable, "-c", "import sys; sys.stderr.write('disk full\\n'); sys.exit(3)")
    assert err.value.exit_code == 3
    assert err.value.stderr == "disk full\n"
    assert "disk full" in str(err.value)
    assert execute("false", check_exit_code=[1]).exit_code == 1
    assert execute("false", check_exit_code=False).exit_code == 1


def test_missing_command_is_a_typed_error():
    with pytest.raises(ProcessExecutionError) as err:
        execute("/nonexistent/tool")
    assert err.value.exit_code == 127


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"  # zombie: already dead
    except FileNotFoundError:
        return True


def test_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    with pytest.raises(ProcessTimeout) as err:
        execute("sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait", timeout=0.5)
    assert err.value.timeout == 0.5 and err.value.retryable
    grandchild = int(pidfile.read_text())
    wait_until(lambda: _gone(grandchild), timeout=5, message="the timed-out command's child to die")


class Runner(BaseActor):
    def run(self, seconds: float) -> str:
        return execute("sleep", str(seconds), timeout=10).stdout

    def ping(self) -> str:
        return "pong"


def test_execute_does_not_block_other_actors(runtime):
    system = ActorSystem(runtime)
    try:
        runner = system.spawn("runner", Runner())
        other = system.spawn("other", Runner())
        slow = runner.ask("run", (2,))
        assert other.ask("ping", timeout=5).result() == "pong"
        assert not slow.done()  # the other actor answered while the command ran
        slow.result(timeout=10)
    finally:
        assert system.stop(5)


def test_output_beyond_max_output_is_read_and_dropped_keeping_the_tail():
    script = "import sys; sys.stdout.write('x' * 3_000_000 + 'END'); sys.stderr.write('e' * 5000)"
    result = execute(sys.executable, "-c", script, max_output=1000, timeout=30)
    assert result.stdout.endswith("x" * 997 + "END")
    assert result.stdout.startswith("[2999003 earlier bytes not kept]\n")
    assert len(result.stdout) < 1100 and result.stderr.endswith("e" * 1000)
    assert execute("echo", "small", max_output=1000).stdout == "small\n"  # no marker
    with pytest.raises(ValueError, match="max_output"):
        execute("true", max_output=0)


def test_a_command_whose_background_child_holds_its_output_times_out(tmp_path):
    # The command exits at once; its child keeps stdout open: still bounded by the timeout.
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(ProcessTimeout):
        execute("sh", "-c", f"sleep 60 & echo $! > {pidfile}", timeout=0.5)
    assert time.monotonic() - started < 10
    _assert_dies(int(pidfile.read_text()))


def test_a_caller_killed_while_waiting_kills_the_command(tmp_path):
    import gevent

    pidfile = tmp_path / "child.pid"
    running = gevent.event.Event()

    def run() -> None:
        running.set()
        execute("sh", "-c", f"echo $$ > {pidfile}; exec sleep 60", timeout=60)

    caller = gevent.spawn(run)
    assert running.wait(5)
    # Polling a file the command writes: nothing to wait on.
    wait_until(
        lambda: pidfile.exists() and pidfile.read_text().strip(),
        timeout=5,
        message="the command to start",
    )
    caller.kill(block=True, timeout=10)
    assert caller.dead
    _assert_dies(int(pidfile.read_text()))


def _assert_dies(pid: int) -> None:
    # Polling /proc: a process of another group has no event for us.
    wait_until(lambda: _gone(pid), timeout=5, message=f"process {pid} to die")
