"""A share backend with many shares, made directly (rows and directories) for scale runs.

Used by the start-up-at-scale test and by bench/bench_start.py: making tens of
thousands of shares through the service would measure something else.
"""

from __future__ import annotations

import signal
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from actors.registry import Registry, sqlite_url_for
from share_service.tables import MIGRATIONS, shares
from tests.daemon import start_actorsd, wait_for
from transport.client import RpcClient

HOST = "node1"
BACKEND = f"{HOST}@local"
_BATCH = 5_000


def write_config(tmp: Path, *, report_interval: float = 1.0) -> Path:
    """A daemon's configuration: one LocalShareDriver backend under `tmp`."""
    config = tmp / "service.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            host = "{HOST}"
            state_dir = "{tmp / "state"}"
            enabled_backends = ["local"]
            report_interval = {report_interval}
            service_down_time = {report_interval * 4}
            [backends.local]
            manager = "share_service.manager:ShareManager"
            driver = "share_service.drivers.local:LocalShareDriver"
            options = {{ root = "{tmp / "root"}" }}
            """
        )
    )
    return config


def seed_shares(tmp: Path, count: int, *, state: str = "available") -> None:
    """`count` shares of 1 GB (ids s000000...), rows in `state` and their directories."""
    registry = Registry(sqlite_url_for(tmp / "state"))
    try:
        registry.add_migrations(MIGRATIONS)
        registry.upgrade()
        share_dir = tmp / "root" / "shares"
        share_dir.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        for start in range(0, count, _BATCH):
            rows: list[dict[str, Any]] = []
            for i in range(start, min(start + _BATCH, count)):
                share_id = f"s{i:06d}"
                path = share_dir / share_id
                path.mkdir(exist_ok=True)
                rows.append(
                    {
                        "id": share_id,
                        "backend": BACKEND,
                        "name": None,
                        "size_gb": 1,
                        "state": state,
                        "reason": None,
                        "export_path": str(path),
                        "access_rules": [],
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            with registry.transaction(write=True) as conn:
                conn.execute(insert(shares), rows)
    finally:
        registry.close()


def is_up(tmp: Path) -> bool:
    """Whether the backend's row in the registry says it is up (heartbeats)."""
    registry = Registry(sqlite_url_for(tmp / "state"))
    try:
        return any(r.is_up and r.backend == "local" for r in registry.services(host=HOST))
    finally:
        registry.close()


def start_and_wait_repaired(
    tmp: Path, runtime: str, count: int, timeout: float = 300.0
) -> dict[str, float]:
    """Start actorsd over a seeded backend; time to listening, to up, to repaired; stop it."""
    config = write_config(tmp)
    began = time.monotonic()
    proc, endpoint = start_actorsd(config, tmp / "actorsd.log", runtime)
    try:
        listening = time.monotonic() - began
        wait_for(lambda: is_up(tmp), "the backend to report up", timeout)
        up = time.monotonic() - began
        log = tmp / "actorsd.log"
        wait_for(lambda: "start-up repairs done" in log.read_text(), "the repairs", timeout)
        repaired = time.monotonic() - began
        rss_kb = _rss_kb(proc.pid)
        with RpcClient(endpoint, timeout=30) as client:
            assert client.call("local", "get_share", {"share_id": f"s{count - 1:06d}"})["id"]
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return {"listening_s": listening, "up_s": up, "repaired_s": repaired, "rss_mb": rss_kb / 1024}


def _rss_kb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):  # the peak: what the start-up needed at most
            return float(line.split()[1])
    return 0.0
