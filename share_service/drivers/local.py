"""`LocalShareDriver`: the share service's shares as directories on the local host.

Layout under the configured `root`::

    <root>/shares/<share_id>/                  the share itself
    <root>/snapshots/<share_id>/<snapshot_id>/ full copies of the share
    <root>/exports                             an /etc/exports-style file

Snapshots are real copies made with `cp -a --reflink=auto|always|never` (cheap
on file systems with reflinks, such as btrfs or XFS). Every change that could
be cut short is made atomic with a rename: a snapshot is copied into a hidden
temporary directory and renamed into place, a revert copies the snapshot next
to the share and swaps the two with renames, the exports file is written to a
temporary file and `os.replace`d. Hidden names start with "." and can never
collide with an id; `do_setup` finishes or undoes what a crash interrupted, so
a share is never left half reverted.

`<root>/.lock` is held while the driver runs: a second driver on the same
root (another process, or an earlier incarnation still running) fails its
setup, and retries, rather than undo work in progress.

Ids follow the share service's one rule (`share_service.ids`), and the driver refuses to
work on a share or snapshot path that is a symbolic link: nothing it deletes,
copies or replaces can be outside `root`.

The exports file is only written, never applied: point the NFS server at it
(or copy it into /etc/exports.d/) and run `exportfs -ra` as your deployment
does.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from actors.drivers import DriverActor, DriverOptions, LockFile
from actors.errors import ProcessExecutionError
from share_service.checks import (
    GIB,
    check_share_id,
    check_size,
    check_snapshot_id,
    normalize_rules,
)
from share_service.drivers.base import ShareDriver
from share_service.errors import (
    ShareBroken,
    ShareNotFoundOnHost,
    ShareTooSmall,
    SnapshotNotFound,
    UnsafeShareId,
    UnsafeSnapshotId,
)
from share_service.ids import is_safe_id

__all__ = ["LocalShareDriver", "LocalShareOptions"]

_EXPORT_OPTIONS = "sync,no_subtree_check"


# -- the driver ------------------------------------------------------------------------------
class LocalShareOptions(DriverOptions):
    root: Path = Field(description="directory under which shares, snapshots and exports live")
    reflink: Literal["auto", "always", "never"] = Field(
        "auto", description="how snapshots and reverts copy: cp --reflink=<this>"
    )
    copy_timeout: float = Field(3600.0, gt=0, description="deadline of one cp, in seconds")
    du_timeout: float = Field(600.0, gt=0, description="deadline of one du, in seconds")


class LocalShareDriver(DriverActor, ShareDriver):
    """Shares are directories under `root`; see the module docstring.

    Its operations are `ShareDriver`'s (declared there, with their idempotency).
    """

    Options = LocalShareOptions
    options: LocalShareOptions

    def __init__(self, options: DriverOptions, *, host: str, backend: str) -> None:
        super().__init__(options, host=host, backend=backend)
        root = Path(os.path.abspath(os.path.expanduser(self.options.root)))
        self.root = root
        self.shares_dir = root / "shares"
        self.snapshots_dir = root / "snapshots"
        self.exports_file = root / "exports"
        self._root_lock: LockFile | None = None
        self.reflink_supported = False
        self._du_bytes = True  # GNU `du -sb`; else `du -sk` * 1024

    # -- setup ----------------------------------------------------------------------------
    def do_setup(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._root_lock is None:
            # One driver per root, across processes too: setup finishes or
            # undoes interrupted work, which must not be another driver's.
            self._root_lock = LockFile(self.root / ".lock").acquire()
        for path in (self.shares_dir, self.snapshots_dir):
            if path.is_symlink():
                raise RuntimeError(f"{path} is a symbolic link; refusing to use it")
            path.mkdir(exist_ok=True)
        if self.exports_file.is_symlink():
            raise RuntimeError(f"{self.exports_file} is a symbolic link; refusing to use it")
        if not self.exports_file.exists():
            self._write_exports([])
        self._recover()
        self.reflink_supported = self._probe_reflink()
        du = self.execute(  # on one small file: a full root could take long
            "du", "-sb", "--", str(self.exports_file), timeout=30, check_exit_code=False
        )
        self._du_bytes = du.exit_code == 0

    def on_stop(self) -> None:
        self._release_root()

    def on_crash(self, reason: str) -> None:
        self._release_root()

    def _release_root(self) -> None:
        lock, self._root_lock = self._root_lock, None
        if lock is not None:
            lock.release()

    def check_for_setup_error(self) -> None:
        for path in (self.root, self.shares_dir, self.snapshots_dir):
            if path.is_symlink() or not path.is_dir():
                raise RuntimeError(f"{path} is not a directory")
            if not os.access(path, os.W_OK | os.X_OK):
                raise PermissionError(f"cannot write to {path}")
        if not self.exports_file.is_file() or self.exports_file.is_symlink():
            raise RuntimeError(f"{self.exports_file} is not a regular file")
        if any(c in str(self.root) for c in '"\\\n\r\t'):
            raise RuntimeError(f"{self.root!s}: an exported path cannot hold quotes or backslashes")
        for tool in ("cp", "du"):
            if shutil.which(tool) is None:
                raise FileNotFoundError(f"the {tool!r} command is not installed")
        if self.options.reflink == "always" and not self.reflink_supported:
            raise RuntimeError(f"reflink='always' but {self.root} does not support reflink copies")

    def get_stats(self) -> dict[str, Any]:
        usage = shutil.disk_usage(self.root)
        return {
            "driver": "local",
            "total_bytes": usage.total,
            "free_bytes": usage.free,
            "total_capacity_gb": round(usage.total / GIB, 2),
            "free_capacity_gb": round(usage.free / GIB, 2),
            "snapshot_support": True,
            "revert_to_snapshot_support": True,
            "reflink": self.reflink_supported,
        }

    # -- shares ---------------------------------------------------------------------------
    def create_share(self, share_id: str, size_gb: int) -> dict[str, Any]:
        path = self._share_path(share_id)
        self._check_size("create_share", size_gb)
        path.mkdir(exist_ok=True)
        return {"share_id": share_id, "export_path": str(path), "size_gb": size_gb}

    def delete_share(self, share_id: str) -> bool:
        path = self._share_path(share_id)
        snapshots = self._snapshots_of(share_id)  # refuses a symlink before anything is removed
        self._set_export_lines(path, None)  # stop serving it first
        existed = path.is_dir()
        for doomed in (path, snapshots):
            if doomed.exists() or doomed.is_symlink():
                self._discard(doomed, share_id)
        return existed

    def extend_share(self, share_id: str, new_size_gb: int) -> dict[str, Any]:
        self._check_size("extend_share", new_size_gb)
        self._existing_share(share_id)
        return {"share_id": share_id, "size_gb": new_size_gb}

    def shrink_share(self, share_id: str, new_size_gb: int) -> dict[str, Any]:
        self._check_size("shrink_share", new_size_gb)
        used = self._du(self._existing_share(share_id))
        if used > new_size_gb * GIB:
            raise ShareTooSmall(share_id, used, new_size_gb)
        return {"share_id": share_id, "size_gb": new_size_gb}

    def get_usage(self, share_id: str) -> dict[str, Any]:
        return {"share_id": share_id, "used_bytes": self._du(self._existing_share(share_id))}

    # -- snapshots ------------------------------------------------------------------------
    def create_snapshot(self, share_id: str, snapshot_id: str) -> dict[str, Any]:
        share = self._existing_share(share_id)
        target = self._snapshot_path(share_id, snapshot_id)
        if not target.is_dir():
            parent = target.parent
            parent.mkdir(exist_ok=True)
            tmp = parent / f".tmp.{snapshot_id}.{uuid.uuid4().hex}"
            try:
                self._copy(share, tmp)
                os.rename(tmp, target)
            except BaseException:
                self._remove(tmp)
                raise
        return {
            "share_id": share_id,
            "snapshot_id": snapshot_id,
            "path": str(target),
            "size_bytes": self._du(target),
        }

    def delete_snapshot(self, share_id: str, snapshot_id: str) -> bool:
        check_share_id(share_id)
        path = self._snapshot_path(share_id, snapshot_id)
        if not path.is_dir():
            return False
        self._discard(path, snapshot_id)
        return True

    def revert_to_snapshot(self, share_id: str, snapshot_id: str) -> dict[str, Any]:
        share = self._existing_share(share_id)
        snapshot = self._snapshot_path(share_id, snapshot_id)
        if not snapshot.is_dir():
            raise SnapshotNotFound(share_id, snapshot_id)
        token = uuid.uuid4().hex
        fresh = self.shares_dir / f".revert.{share_id}.{token}"
        old = self.shares_dir / f".old.{share_id}.{token}"
        try:
            self._copy(snapshot, fresh)
            # The swap: a crash between these renames is undone by do_setup (.old comes back).
            os.rename(share, old)
            try:
                os.rename(fresh, share)
            except BaseException:
                os.rename(old, share)
                raise
        finally:
            self._remove(fresh)
        self._remove(old)
        return {"share_id": share_id, "snapshot_id": snapshot_id, "export_path": str(share)}

    # -- access ---------------------------------------------------------------------------
    def update_access(self, share_id: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        path = self._share_path(share_id)
        clients = normalize_rules(rules)
        if clients and not path.is_dir():
            raise ShareNotFoundOnHost(share_id)
        self._set_export_lines(path, self._export_line(path, clients) if clients else None)
        return {"share_id": share_id, "exports": len(clients)}

    def ensure_share(
        self, share_id: str, size_gb: int, rules: list[dict[str, Any]]
    ) -> dict[str, Any]:
        path = self._share_path(share_id)
        self._check_size("ensure_share", size_gb)
        clients = normalize_rules(rules)
        if not path.is_dir():
            raise ShareBroken(share_id, f"its directory {path} is missing")
        wanted = [self._export_line(path, clients)] if clients else []
        repaired: list[str] = []
        if self._export_lines_of(path) != wanted:
            self._set_export_lines(path, wanted[0] if wanted else None)
            repaired.append("exports")
        return {"share_id": share_id, "repaired": repaired, "export_path": str(path)}

    # -- paths ----------------------------------------------------------------------------
    def _share_path(self, share_id: str) -> Path:
        """The share's path: a direct child of shares/, never a symlink."""
        check_share_id(share_id)
        path = self._child(self.shares_dir, share_id)
        if path is None:
            raise UnsafeShareId(share_id, f"{self.shares_dir / share_id} is a symbolic link")
        return path

    def _existing_share(self, share_id: str) -> Path:
        path = self._share_path(share_id)
        if not path.is_dir():
            raise ShareNotFoundOnHost(share_id)
        return path

    def _snapshots_of(self, share_id: str) -> Path:
        """snapshots/<share_id>: a direct child of snapshots/, never a symlink."""
        check_share_id(share_id)
        path = self._child(self.snapshots_dir, share_id)
        if path is None:
            raise UnsafeShareId(share_id, f"{self.snapshots_dir / share_id} is a symbolic link")
        return path

    def _snapshot_path(self, share_id: str, snapshot_id: str) -> Path:
        parent = self._snapshots_of(share_id)
        check_snapshot_id(snapshot_id)
        path = self._child(parent, snapshot_id)
        if path is None:
            raise UnsafeSnapshotId(snapshot_id, f"{parent / snapshot_id} is a symbolic link")
        return path

    @staticmethod
    def _child(parent: Path, name: str) -> Path | None:
        """parent/name if it is a direct child that is no symlink (nor is parent), else None."""
        if parent.is_symlink():
            return None
        path = parent / name
        if path.parent != parent or path.name != name or path.is_symlink():
            return None
        if Path(os.path.realpath(path)).parent != Path(os.path.realpath(parent)):
            return None
        return path

    # -- host work ------------------------------------------------------------------------
    def _check_size(self, op: str, size_gb: int) -> None:
        check_size(self.name, op, size_gb)

    def _copy(self, source: Path, target: Path) -> None:
        """`cp -a` source to target (which must not exist yet): target becomes the copy."""
        if target.exists() or target.is_symlink():
            raise FileExistsError(str(target))
        self.execute(
            "cp",
            "-a",
            f"--reflink={self.options.reflink}",
            "--",
            str(source),
            str(target),
            timeout=self.options.copy_timeout,
        )

    def _du(self, path: Path) -> int:
        """Bytes used under `path` (apparent size), by `du`; never follows symlinks."""
        flag = "-sb" if self._du_bytes else "-sk"
        result = self.execute("du", flag, "--", str(path), timeout=self.options.du_timeout)
        try:
            value = int(result.stdout.split()[0])
        except (IndexError, ValueError):
            raise ProcessExecutionError(
                ["du", flag, str(path)], 0, result.stdout, "unexpected output from du"
            ) from None
        return value if self._du_bytes else value * 1024

    def _probe_reflink(self) -> bool:
        token = uuid.uuid4().hex
        probe = self.root / f".reflink-probe.{token}"
        clone = self.root / f".reflink-probe.{token}.clone"
        try:
            probe.write_bytes(b"reflink probe\n")
            result = self.execute(
                "cp",
                "--reflink=always",
                "--",
                str(probe),
                str(clone),
                timeout=30,
                check_exit_code=False,
            )
            return result.exit_code == 0
        finally:
            for path in (probe, clone):
                path.unlink(missing_ok=True)

    def _remove(self, path: Path) -> None:
        """Remove a file, a symlink (the link only) or a directory tree under root."""
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
        elif path.is_dir():
            # A subprocess, so that a big tree never stalls other actors (gevent);
            # rm -r never follows symlinks inside, and stays on this file system.
            self.execute(
                "rm", "-rf", "--one-file-system", "--", str(path), timeout=self.options.copy_timeout
            )

    def _discard(self, path: Path, name: str) -> None:
        """Remove a directory so that it disappears at once: rename, then remove."""
        doomed = path.parent / f".deleting.{name}.{uuid.uuid4().hex}"
        os.rename(path, doomed)
        self._remove(doomed)

    def _clear_leftover(self, path: Path) -> None:
        """Remove a leftover of an interrupted operation; one that resists is only logged.

        Nothing refers to it any more (its share was deleted, its copy never
        used): failing setup for it would leave every share of the backend
        without a driver.
        """
        try:
            self._remove(path)
        except (OSError, ProcessExecutionError) as exc:
            self.log.error("cannot remove leftover %s (remove it by hand): %s", path, exc)

    def _recover(self) -> None:
        """Finish or undo what an interrupted operation left behind (names start with '.')."""
        for entry in self.shares_dir.iterdir():
            name = entry.name
            if name.startswith((".revert.", ".deleting.")):
                self._clear_leftover(entry)
            elif name.startswith(".old."):
                share_id = name.split(".")[2] if name.count(".") >= 3 else ""
                share = self.shares_dir / share_id
                if (
                    is_safe_id(share_id)
                    and not share.exists()
                    and not share.is_symlink()
                    and not entry.is_symlink()
                ):
                    self.log.warning("undoing an interrupted revert of share %r", share_id)
                    os.rename(entry, share)
                else:
                    self._clear_leftover(entry)
        for entry in self.snapshots_dir.iterdir():
            if entry.name.startswith("."):
                self._clear_leftover(entry)
            elif entry.is_dir() and not entry.is_symlink():
                for inner in entry.iterdir():
                    if inner.name.startswith((".tmp.", ".deleting.")):
                        self._clear_leftover(inner)
        for entry in self.root.iterdir():
            if entry.name.startswith((".exports.", ".reflink-probe.")) and not entry.is_dir():
                entry.unlink(missing_ok=True)

    # -- the exports file -----------------------------------------------------------------
    @staticmethod
    def _quote(path: Path) -> str:
        text = str(path)
        return f'"{text}"' if any(c.isspace() for c in text) else text

    def _export_line(self, path: Path, clients: list[tuple[str, str]]) -> str:
        parts = [f"{client}({level},{_EXPORT_OPTIONS})" for client, level in clients]
        return " ".join([self._quote(path), *parts])

    @staticmethod
    def _line_path(line: str) -> str | None:
        text = line.strip()
        if not text or text.startswith("#"):
            return None
        if text.startswith('"'):
            end = text.find('"', 1)
            return text[1:end] if end > 0 else None
        return text.split()[0]

    def _read_exports(self) -> list[str]:
        try:
            return self.exports_file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []

    def _export_lines_of(self, path: Path) -> list[str]:
        return [line for line in self._read_exports() if self._line_path(line) == str(path)]

    def _set_export_lines(self, path: Path, line: str | None) -> None:
        """Replace this share's line(s) with `line` (None: no line); others untouched."""
        old = self._read_exports()
        new: list[str] = []
        pending = [line] if line is not None else []
        for existing in old:
            if self._line_path(existing) != str(path):
                new.append(existing)
            else:  # the first of its lines keeps its place
                new.extend(pending)
                pending = []
        new.extend(pending)
        if new != old or not self.exports_file.exists():
            self._write_exports(new)

    def _write_exports(self, lines: list[str]) -> None:
        tmp = self.root / f".exports.{uuid.uuid4().hex}"
        data = "".join(f"{line}\n" for line in lines)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.exports_file)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
