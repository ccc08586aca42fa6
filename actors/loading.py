"""Load managers and drivers by import path from configuration."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, TypeVar, overload

from actors.errors import LoadError

__all__ = ["load_object", "register_object", "unregister_object"]

_REGISTERED: dict[str, Any] = {}


def register_object(obj: Any, name: str | None = None) -> str:
    """Make `obj` loadable by a name (for classes that are not importable,
    such as ones defined inside a test). Returns the name to put in a config.
    """
    name = name or f"registered:{getattr(obj, '__qualname__', type(obj).__name__)}:{id(obj):x}"
    _REGISTERED[name] = obj
    return name


def unregister_object(name: str) -> None:
    _REGISTERED.pop(name, None)


T = TypeVar("T")


@overload
def load_object(path: str) -> Any: ...
@overload
def load_object(path: str, *, kind: type[T]) -> type[T]: ...


def load_object(path: str, *, kind: type | None = None) -> Any:
    """Import `package.module:Name` (or `package.module.Name`) and return it.

    With `kind`, the object must be a subclass of it. Every failure is a
    `LoadError` whose `kind` says which: bad_path, module_not_found,
    import_failed, attribute_missing, wrong_kind.
    """
    if isinstance(path, str) and path in _REGISTERED:
        found = _REGISTERED[path]
        if kind is not None and not (isinstance(found, type) and issubclass(found, kind)):
            raise LoadError(path, "wrong_kind", f"{found!r} is not a subclass of {kind.__name__}")
        return found
    if not isinstance(path, str) or not path.strip():
        raise LoadError(str(path), "bad_path", "expected 'package.module:Name'")
    module_name, sep, attr_path = path.strip().partition(":")
    if not sep:
        module_name, _, attr_path = module_name.rpartition(".")
    if not module_name or not attr_path:
        raise LoadError(path, "bad_path", "expected 'package.module:Name' or 'package.module.Name'")
    _refuse_the_running_program(path, module_name)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise LoadError(
                path, "module_not_found", f"no module named {missing!r}{_script_hint(module_name)}"
            ) from exc
        raise LoadError(path, "import_failed", f"importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise LoadError(
            path, "import_failed", f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise LoadError(
                path, "attribute_missing", f"module {module_name!r} has no attribute {attr_path!r}"
            ) from None
    if kind is not None and not (isinstance(obj, type) and issubclass(obj, kind)):
        raise LoadError(path, "wrong_kind", f"{attr_path!r} is not a subclass of {kind.__name__}")
    return obj


_OWN_MODULE = (
    "; put the classes a configuration names in a module of their own that"
    " the program imports (see the README, Embedding)"
)


def _refuse_the_running_program(path: str, module_name: str) -> None:
    """Refuse a path into the module run as `python -m module_name`.

    That module is `__main__`, not `module_name`: importing it by name would
    run its code a second time (a second service, a second `with` block).
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name == module_name and module_name not in sys.modules:
        raise LoadError(
            path,
            "running_program",
            f"{module_name!r} is the program being run (python -m {module_name}): "
            f"importing it again would run it twice{_OWN_MODULE}",
        )


def _script_hint(module_name: str) -> str:
    """A hint when the missing module is the script being run (`python myapp/volumes.py`)."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if not main_file:
        return ""
    tail = Path(*module_name.split("."))
    script = Path(main_file).resolve().with_suffix("")
    if script.parts[-len(tail.parts) :] == tail.parts:
        return f" (it is the script being run, not importable as {module_name!r}){_OWN_MODULE}"
    return ""
