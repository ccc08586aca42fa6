"""The one rule for share and snapshot ids, checked by the manager and the drivers.

An id is also a directory name under a driver's root and an exports path, so
it must never escape it: 1-64 letters, digits, '-' or '_', not starting with
'-' or '_' (which also keeps it clear of the drivers' hidden '.' names).
"""

from __future__ import annotations

import re
from typing import Any, TypeGuard

__all__ = ["ID_RULE", "SAFE_ID", "is_safe_id"]

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ID_RULE = "1-64 letters, digits, '-' or '_' (not '-' or '_' first)"


def is_safe_id(value: Any) -> TypeGuard[str]:
    """Whether `value` is a string that follows the id rule."""
    return isinstance(value, str) and SAFE_ID.fullmatch(value) is not None
