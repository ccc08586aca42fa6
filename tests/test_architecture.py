"""The allowed imports between the shipped packages (docs/architecture.md).

    share_service  ->  actors  ->  transport

An arrow is the only direction an import may take: `transport` knows no
actors, and the framework knows no application built on it. A private name
(a module or attribute starting with `_`) belongs to the package that defines
it: a private module (and everything in it) may be imported from inside its
package and that package's subpackages only; a private attribute of a public
module is that module's own.
Every import counts, also those inside functions and `TYPE_CHECKING` blocks.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("transport", "actors", "share_service")
# Which shipped packages each one may import (itself always).
ALLOWED = {
    "transport": set[str](),
    "actors": {"transport"},
    "share_service": {"actors", "transport"},
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    line: int
    target: str  # the imported module, dotted
    name: str | None  # the imported attribute, for `from x import name`
    type_only: bool = False  # under `if TYPE_CHECKING:`: never run

    def __str__(self) -> str:
        what = f"{self.target}.{self.name}" if self.name else self.target
        return f"{self.module}:{self.line} imports {what}"


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in SHIPPED:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _package_of(module, path)
    type_only = {
        id(child)
        for node in ast.walk(tree)
        if _is_type_checking(node)
        for stmt in node.body  # type: ignore[attr-defined]
        for child in ast.walk(stmt)
    }
    found: list[Import] = []
    for node in ast.walk(tree):
        only = id(node) in type_only
        if isinstance(node, ast.Import):
            found += [Import(module, node.lineno, a.name, None, only) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, target] if target else base)
            found += [Import(module, node.lineno, target, a.name, only) for a in node.names]
    return found


def _owner_of_private(target: str, name: str | None) -> str | None:
    """The package a private name belongs to, or None if nothing is private."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_"):
            return ".".join(parts[:i])
    if name is not None and name.startswith("_") and name != "__version__":
        return target
    return None


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


ALL_IMPORTS = [imp for module, path in _modules().items() for imp in _imports(module, path)]


def test_the_packages_are_found() -> None:
    top_levels = {imp.module.split(".")[0] for imp in ALL_IMPORTS}
    assert top_levels == set(SHIPPED)


@pytest.mark.parametrize("package", SHIPPED)
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    forbidden = set(SHIPPED) - ALLOWED[package] - {package}
    wrong = [
        str(imp)
        for imp in ALL_IMPORTS
        if imp.module.split(".")[0] == package and imp.target.split(".")[0] in forbidden
    ]
    assert not wrong, f"{package} may import only {sorted(ALLOWED[package])}: {wrong}"


def test_private_names_stay_inside_the_package_that_defines_them() -> None:
    wrong = []
    for imp in ALL_IMPORTS:
        if imp.target.split(".")[0] not in SHIPPED:
            continue  # a third-party library's privates are pinned in pyproject.toml
        owner = _owner_of_private(imp.target, imp.name)
        if owner is not None and not _inside(imp.module, owner):
            wrong.append(str(imp))
    assert not wrong, f"private names used outside their package: {wrong}"


@pytest.mark.parametrize(
    ("module", "target", "name", "allowed"),
    [
        ("actors.service", "actors._cell", "Cell", True),
        ("actors.registry.api", "actors._cell", "Cell", True),
        ("share_service.manager", "actors._cell", "Cell", False),
        ("actors.service", "transport._io", "Reader", False),
        ("actors.service", "actors.registry.api", "_transaction", False),
        ("actors.registry.journal", "actors.registry.api", "_transaction", False),
        ("actors.registry.journal", "actors.registry._ids", "new_id", True),
        ("actors.service", "actors.registry._ids", "new_id", False),
    ],
)
def test_the_private_name_rule_itself(module: str, target: str, name: str, allowed: bool) -> None:
    owner = _owner_of_private(target, name)
    assert (owner is None or _inside(module, owner)) is allowed


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles() -> None:
    """Imports that run (at load time or inside a function) form no circle.

    `TYPE_CHECKING` imports are left out: they never run. A module that needs
    another only for annotations imports it that way (docs/architecture.md).
    """
    modules = _modules()
    edges: dict[str, set[str]] = {}
    for imp in ALL_IMPORTS:
        if imp.type_only:
            continue
        for candidate in (f"{imp.target}.{imp.name}", imp.target):
            if candidate in modules and candidate != imp.module:
                edges.setdefault(imp.module, set()).add(candidate)
                break
    assert _cycles(edges) == []
