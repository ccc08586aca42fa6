"""Print pip constraints pinning every declared dependency to its lower bound.

CI installs the project with these constraints and runs the suite a second
time, so a lower bound in pyproject.toml is a version we have tested, not a
guess. Tools that only lint (ruff, mypy) are left out: they do not run there.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

LINT_ONLY = {"ruff", "mypy"}
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(\[[^\]]*\])?\s*(.*)$")


def lower_bounds(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    pins = []
    for requirement in requirements:
        match = REQUIREMENT.match(requirement)
        if match is None:
            raise SystemExit(f"cannot read requirement {requirement!r}")
        name, _, spec = match.groups()
        if name.lower() in LINT_ONLY:
            continue
        bound = re.search(r">=\s*([0-9][^,;\s]*)", spec)
        if bound is None:
            raise SystemExit(f"{name} has no lower bound in {pyproject}: {requirement!r}")
        pins.append(f"{name}=={bound.group(1)}")
    return pins


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    print("\n".join(lower_bounds(root / "pyproject.toml", sys.argv[1:])))
