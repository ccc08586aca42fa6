"""The README's embedding example, pasted as it says, and the two ways of getting it wrong."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Embedding", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_example_runs_as_written_and_keeps_its_state_where_it_says(tmp_path):
    classes, program = _blocks()
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "volumes.py").write_text(classes)
    (tmp_path / "run_volumes.py").write_text(program)
    done = _run(tmp_path, "run_volumes.py")
    assert done.returncode == 0, done.stderr
    assert "'id': 'v1'" in done.stdout
    assert (tmp_path / "volumes-state" / "registry.sqlite").is_file()
    assert not (tmp_path / "state").exists()


def test_classes_in_the_program_itself_are_refused_with_a_reason(tmp_path):
    classes, program = _blocks()
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    together = classes + "\n" + program.replace("from actors import Service, ServiceConfig", "")
    (tmp_path / "myapp" / "volumes.py").write_text(
        "from actors import Service, ServiceConfig\n" + together
    )
    as_script = _run(tmp_path, "myapp/volumes.py")
    assert as_script.returncode == 1
    last = as_script.stderr.strip().splitlines()[-1]
    assert "LoadError" in last and "it is the script being run" in last
    as_module = _run(tmp_path, "-m", "myapp.volumes")
    assert as_module.returncode == 1
    last = as_module.stderr.strip().splitlines()[-1]
    assert "is the program being run (python -m myapp.volumes)" in last
    assert "already exists" not in as_module.stderr  # it never got to run twice
