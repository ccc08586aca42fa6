"""An example backend that does real host work: directories under a root.

`DirectoryDriver` creates, lists and removes directories under its configured
root and measures them with `du`; `DirectoryManager` exposes that over RPC.
It is what `make run` starts, and a small template for your own backends.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from pydantic import Field

from actors import DriverActor, DriverOptions, ManagerActor, operation, rpc
from actors.errors import ActorsError

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class UnsafeName(ActorsError):
    """A name that could escape the driver's root directory."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unsafe name {name!r}: use letters, digits, '-' and '_'", name=name)


class DirectoryOptions(DriverOptions):
    root: Path = Field(description="directory under which every item lives")


class DirectoryDriver(DriverActor):
    """Items are directories under `root`; names can never escape it."""

    Options = DirectoryOptions
    options: DirectoryOptions

    def _path(self, name: str) -> Path:
        if not _SAFE_ID.match(name):
            raise UnsafeName(name)
        path = (self.options.root / name).resolve()
        if path.parent != self.options.root.resolve():
            raise UnsafeName(name)
        return path

    def do_setup(self) -> None:
        self.options.root.mkdir(parents=True, exist_ok=True)

    def check_for_setup_error(self) -> None:
        if not os.access(self.options.root, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot write to {self.options.root}")
        if shutil.which("du") is None:
            raise FileNotFoundError("the 'du' command is not installed")

    def get_stats(self) -> dict[str, Any]:
        usage = shutil.disk_usage(self.options.root)
        return {"driver": "directory", "total_bytes": usage.total, "free_bytes": usage.free}

    @operation(idempotent=True)
    def create(self, name: str, content: str = "") -> dict[str, Any]:
        path = self._path(name)
        path.mkdir(exist_ok=True)
        (path / "README").write_text(content, encoding="utf-8")
        return self._describe(name, path)

    @operation(idempotent=True)
    def delete(self, name: str) -> bool:
        path = self._path(name)
        if not path.exists():
            return False
        shutil.rmtree(path)
        return True

    @operation(idempotent=True)
    def list_items(self) -> list[dict[str, Any]]:
        root = self.options.root
        return [self._describe(p.name, p) for p in sorted(root.iterdir()) if p.is_dir()]

    def _describe(self, name: str, path: Path) -> dict[str, Any]:
        du = self.execute("du", "-sk", str(path), timeout=30)
        return {"name": name, "path": str(path), "kilobytes": int(du.stdout.split()[0])}


class DirectoryManager(ManagerActor):
    """RPC front of DirectoryDriver."""

    RPC_API_VERSION = "1.0"

    @rpc(idempotent=True)
    def create(self, name: str, content: str = "") -> Any:
        """Create (or refresh) an item; returns its path and size. Journaled."""
        return self.driver.create(name, content)

    @rpc(idempotent=True)
    def delete(self, name: str) -> Any:
        """Remove an item; True if it existed. Journaled."""
        return self.driver.delete(name)

    @rpc
    def list_items(self) -> Any:
        """Every item with its size."""
        return self.then(
            self.driver.list_items(), lambda items: {"items": items, "count": len(items)}
        )

    @rpc
    def stats(self) -> Any:
        """Capacity of the backend."""
        return self.driver.get_stats()
