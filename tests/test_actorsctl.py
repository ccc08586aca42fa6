"""actorsctl as an operator meets it (issue #22): exit codes, argument syntax, output
format in either place, JSON errors, close-name suggestions, and start-up cost (#20)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from actors.cli import actorsctl
from actors.cli.actorsctl import cli, render_table

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ctl(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def runtime_name() -> str:
    """actorsctl's client blocks its thread: the service under it runs on threads."""
    return "threading"


@pytest.fixture
def endpoint(make_service) -> Iterator[str]:
    """A real service over TCP."""
    service = make_service()
    server = service.serve("tcp://127.0.0.1:0")
    yield server.endpoint


def test_nothing_listening_is_said_within_a_second_with_exit_69():
    where = f"tcp://127.0.0.1:{_free_port()}"
    for command in (["ping"], ["call", "b1", "get", "--arg", "resource_id=x"], ["status"]):
        started = time.monotonic()
        done = ctl("--endpoint", where, *command)
        assert time.monotonic() - started < 1.5, command
        assert done.exit_code == 69, (command, done.output)
        assert done.stderr.startswith(f"NothingAnswers: nothing answers at {where}")


def test_a_disable_reason_over_its_column_is_a_usage_error():
    done = ctl("service", "disable", "h1", "b1", "--reason", "r" * 256)
    assert done.exit_code == 2 and "at most 255 characters" in done.output


def test_output_json_after_the_command_and_errors_as_json():
    where = f"tcp://127.0.0.1:{_free_port()}"
    done = ctl("--endpoint", where, "ping", "--output", "json")
    assert done.exit_code == 69
    error = json.loads(done.stderr)["error"]
    assert error["type"] == "NothingAnswers" and error["exit_code"] == 69
    assert where in error["message"] and error["retryable"] is False


def test_text_and_json_arguments_as_in_httpie():
    parse = actorsctl._parse_args
    assert parse(("share_id=123", "size_gb:=10", "force:=true"), None) == {
        "share_id": "123",  # a string, whatever it looks like
        "size_gb": 10,
        "force": True,
    }
    assert parse(("note=a=b", "tags:=[1, 2]"), '{"x": 1}') == {
        "x": 1,
        "note": "a=b",
        "tags": [1, 2],
    }
    done = ctl("--endpoint", "tcp://127.0.0.1:9", "call", "b1", "m", "--arg", "n:=ten")
    assert done.exit_code == 2 and "for a string write n=ten" in done.output


def test_help_documents_arguments_output_and_exit_codes():
    text = ctl("--help").output
    for words in ("name=text", "name:=json", "--output", "69", "75", "actorsctl ping"):
        assert words in text, words
    assert "name=text" in ctl("call", "--help").output


def test_a_call_with_results_in_either_output_place(endpoint):
    made = ctl("--endpoint", endpoint, "call", "b1", "create", "--arg", "resource_id=r1")
    assert made.exit_code == 0, made.output
    shown = ctl(
        "--endpoint", endpoint, "call", "b1", "get", "--arg", "resource_id=r1", "-o", "json"
    )
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["id"] == "r1"


def test_a_mistyped_target_or_method_gets_close_names(endpoint):
    wrong_target = ctl("--endpoint", endpoint, "call", "b2", "get", "--arg", "resource_id=r")
    assert wrong_target.exit_code == 1
    first, hint = wrong_target.stderr.splitlines()[:2]
    assert first.startswith("NotFound:")
    assert "did you mean 'b1'" in hint and "targets here: h@b1" in hint
    wrong_method = ctl("--endpoint", endpoint, "call", "b1", "craete")
    assert wrong_method.exit_code == 1
    first, hint = wrong_method.stderr.splitlines()[:2]
    assert first.startswith("MethodNotAllowed: unknown method 'craete'")
    assert "did you mean 'create'" in hint and "describe" in hint


def test_describe_shows_types_and_what_is_required(endpoint):
    described = ctl("--endpoint", endpoint, "call", "b1", "describe")
    assert described.exit_code == 0, described.output
    assert "create(resource_id: str, size: int = 1)" in described.output
    raw = json.loads(ctl("--endpoint", endpoint, "-o", "json", "call", "b1", "describe").output)
    [create] = [m for m in raw["methods"] if m["name"] == "create"]
    assert create["parameters"][0] == {"name": "resource_id", "type": "str", "required": True}


def test_a_refused_argument_reads_like_every_other(endpoint):
    done = ctl("--endpoint", endpoint, "call", "b1", "create", "--arg", "resource_id=r",
               "--arg", "size=2")  # fmt: skip
    assert done.exit_code == 1
    assert done.stderr.startswith("InvalidArguments:")
    assert "size: expected an integer, got a string" in done.stderr


def test_retryable_errors_exit_75_and_others_1():
    from transport.errors import error_from_wire

    busy = error_from_wire({"type": "Busy", "message": "full", "details": {}, "retryable": True})
    gone = error_from_wire({"type": "NotFound", "message": "no", "details": {}})
    assert actorsctl.exit_code(busy) == 75 and actorsctl.exit_code(gone) == 1


def test_nested_lists_are_labelled_and_long_reasons_end_in_an_ellipsis():
    text = render_table({"id": "s1", "access_rules": [{"access_to": "10.0.0.0/24"}]})
    assert text.splitlines()[:3] == ["access_rules:", "ACCESS_TO", "10.0.0.0/24"]
    assert text.splitlines()[-1] == "id  s1"
    assert actorsctl._clip("x" * 80, 60) == "x" * 59 + "…"
    assert actorsctl._clip("short\nreason", 60) == "short reason"


def test_its_journal_states_are_the_journals():
    from actors.registry.models import OPERATION_STATES

    assert actorsctl.OPERATION_STATES == OPERATION_STATES


def test_both_commands_have_a_version():
    assert "actorsctl, version" in ctl("--version").output
    done = subprocess.run(
        [sys.executable, str(ROOT / "bin" / "actorsd"), "--version"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0 and "actorsd, version" in done.stdout


def test_actorsctl_does_not_import_the_registry_stack_to_call():
    """#20: --help and call pay for no SQLAlchemy, Alembic or psycopg."""
    code = (
        "import sys; from actors.cli import actorsctl; "
        "print(sorted(m for m in ('sqlalchemy', 'alembic', 'psycopg', 'pykka', 'gevent') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_usage_error_is_json_once_json_was_asked_for():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bin" / "actorsctl"), "-o", "json", "call", "b", "m",
         "--arg", "bad"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 2
    error = json.loads(done.stderr)["error"]
    assert error["type"] == "BadParameter" and "name:=json" in error["message"]
