"""`sqlite_outage`: a real outage of a SQLite database file, for tests."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["sqlite_outage"]


@contextlib.contextmanager
def sqlite_outage(path: Path) -> Iterator[None]:
    """Take the SQLite database at `path` away for the block, then give it back.

    The file is moved aside and a directory stands in its place (SQLite can
    neither open nor re-create it), so every call in the block really fails,
    in this process or another one (a daemon under test).
    """
    aside = path.with_name(path.name + ".away")
    candidates = (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
    moved: list[Path] = []
    blocker = path.with_suffix(".blocked")
    link = path.with_suffix(".link")

    def away(p: Path) -> Path:
        return aside.with_name(p.name + ".away")

    try:
        blocker.mkdir()
        link.symlink_to(blocker)  # a directory: SQLite cannot open or create it
        # The database file is never missing, not even for a moment (a
        # connection would create an empty one): keep it under a second
        # name, then swap the blocker in atomically.
        if path.exists():
            os.link(path, away(path))
            moved.append(path)
        os.replace(link, path)
        for p in candidates[1:]:  # no connection can open the database now
            try:
                p.rename(away(p))
            except FileNotFoundError:
                continue  # none, or the last connection just folded it in and removed it
            moved.append(p)
        yield
    finally:
        # Back in the reverse order: the WAL first, the database file last
        # and atomically, so no connection ever sees it without its WAL.
        for p in reversed(moved):
            os.replace(away(p), p)
        for stale in (link, path):
            if stale.is_symlink():
                stale.unlink()
        if blocker.is_dir():
            blocker.rmdir()
