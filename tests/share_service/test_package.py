"""The share service is an application of the framework, not a part of it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_framework_never_imports_the_share_service() -> None:
    sources = [*(ROOT / "actors").rglob("*.py"), *(ROOT / "transport").rglob("*.py")]
    importers = [
        str(path.relative_to(ROOT))
        for path in sources
        if any(
            name == "share_service" or name.startswith("share_service.") for name in _imported(path)
        )
    ]
    assert importers == []
    # actorsctl too: remote errors are rebuilt without importing any service.
    code = (
        "import sys, actors, actors.cli.actorsctl, actors.cli._daemon;"
        "print(sorted(m for m in sys.modules if m.startswith('share_service')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_share_service_uses_only_public_framework_names() -> None:
    private: list[str] = []
    for path in sorted((ROOT / "share_service").rglob("*.py")):
        where = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(), where)):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.Attribute) and _on_the_registry(node):
                names = [f"registry.{node.attr}"]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] in ("actors", "transport", "registry") and any(
                    part.startswith("_") and not part.startswith("__") for part in parts
                ):
                    private.append(f"{where}: {name}")
    assert private == []


def _on_the_registry(node: ast.Attribute) -> bool:
    """`registry._x` or `self.registry._x`: a private attribute of the framework's Registry."""
    value = node.value
    named = getattr(value, "attr", None) or getattr(value, "id", None)
    return named == "registry" and node.attr.startswith("_")


def _imported(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names
