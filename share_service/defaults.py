"""The share service's default configuration: what `actorsd` runs with no `--config`.

Installed as the framework's default service through the `actors.default_service`
entry point (see `actors.config.default_config`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["default_service"]


def default_service(state_dir: Path) -> dict[str, Any]:
    """One backend `local` (ShareManager over LocalShareDriver) rooted in
    `state_dir/shares`, with a quota of 100 GB; topic `shares`."""
    return {
        "topic": "shares",
        "enabled_backends": ["local"],
        "backends": {
            "local": {
                "manager": "share_service.manager:ShareManager",
                "driver": "share_service.drivers.local:LocalShareDriver",
                "options": {"root": str(state_dir / "shares")},
                "manager_options": {"quota_gb": 100},
            }
        },
    }
