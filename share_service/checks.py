"""What the share manager and both share drivers check the same way: ids, sizes, access rules."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

from actors.errors import InvalidArguments
from share_service.errors import InvalidAccessRule, UnsafeShareId, UnsafeSnapshotId
from share_service.ids import is_safe_id

__all__ = [
    "ACCESS_LEVELS",
    "GIB",
    "check_share_id",
    "check_size",
    "check_snapshot_id",
    "normalize_rules",
]

GIB = 1024**3

# Clients of /etc/exports: IP addresses, networks (CIDR), host names, wildcards
# (`*`, `*.example.com`) and netgroups (`@group`). No whitespace, parentheses,
# commas, quotes or comment signs: nothing that could change the line's meaning.
_SAFE_CLIENT = re.compile(r"^[A-Za-z0-9*?@][A-Za-z0-9*?.:/_@-]{0,254}$")
ACCESS_LEVELS = ("rw", "ro")


def check_share_id(share_id: Any) -> str:
    """`share_id` if it is a safe id, else UnsafeShareId."""
    if not is_safe_id(share_id):
        raise UnsafeShareId(str(share_id))
    return share_id


def check_snapshot_id(snapshot_id: Any) -> str:
    """`snapshot_id` if it is a safe id, else UnsafeSnapshotId."""
    if not is_safe_id(snapshot_id):
        raise UnsafeSnapshotId(str(snapshot_id))
    return snapshot_id


def normalize_rules(rules: Iterable[Any]) -> list[tuple[str, str]]:
    """Validated `(client, level)` pairs, in order; identical duplicates merged.

    Raises InvalidAccessRule for a malformed rule, a client that is not a safe
    exports client, an unknown level, or one client given two levels.
    """
    seen: dict[str, str] = {}
    for rule in rules:
        if not isinstance(rule, dict):
            raise InvalidAccessRule(repr(rule), "a rule is a map with access_to and access_level")
        client = rule.get("access_to")
        level = rule.get("access_level")
        if not isinstance(client, str) or not client:
            raise InvalidAccessRule(rule, "access_to must be a non-empty string")
        if not _SAFE_CLIENT.fullmatch(client):
            raise InvalidAccessRule(
                rule, "access_to may hold only letters, digits and . : / _ - * ? @"
            )
        if "/" in client:
            try:
                ipaddress.ip_network(client, strict=False)
            except ValueError:
                raise InvalidAccessRule(rule, "access_to is not a valid network") from None
        if level not in ACCESS_LEVELS:
            raise InvalidAccessRule(rule, "access_level must be 'rw' or 'ro'")
        if seen.get(client, level) != level:
            raise InvalidAccessRule(rule, f"client {client!r} is given two access levels")
        seen[client] = level
    return list(seen.items())


def check_size(target: str, op: str, size_gb: Any) -> None:
    """InvalidArguments unless `size_gb` is a positive integer (not a bool)."""
    if isinstance(size_gb, bool) or not isinstance(size_gb, int) or size_gb <= 0:
        raise InvalidArguments(target, op, f"size must be a positive integer of GiB: {size_gb!r}")
