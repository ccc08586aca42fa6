"""The HTTP front door example (share_service/http.py) end to end, over a real actorsd.

The daemon runs the embedded default (the share service, backend `local`) as
a subprocess; the web app talks to it over ZeroMQ with AsyncRpcClient, and
the test talks to the web app over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from share_service.http import make_app
from tests.daemon import ROOT, running_actorsd
from transport.aio import AsyncRpcClient


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 90))


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    with running_actorsd(None, tmp_path / "actorsd.log", "gevent", cwd=tmp_path) as started:
        yield started


@asynccontextmanager
async def front_door(endpoint: str, timeout: float = 20.0) -> AsyncIterator[str]:
    """The example app on a free port, calling `endpoint`; yields its base URL."""
    async with AsyncRpcClient(endpoint, timeout=timeout) as client:
        runner = web.AppRunner(make_app(client, "local", timeout=timeout))
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            yield f"http://127.0.0.1:{runner.addresses[0][1]}"
        finally:
            await runner.cleanup()


def test_shares_over_http(daemon):
    _, endpoint = daemon

    async def main() -> None:
        async with front_door(endpoint) as url, aiohttp.ClientSession(url) as http:
            async with http.get("/shares") as r:
                assert r.status == 200 and (await r.json())["count"] == 0

            new = {"share_id": "projects", "size_gb": 1}
            async with http.post("/shares", json=new, headers={"Idempotency-Key": "k1"}) as r:
                assert r.status == 201, await r.text()
                assert r.headers["Location"] == "/shares/projects"
                first = await r.json()
            assert first["state"] == "available" and first["size_gb"] == 1
            async with http.post("/shares", json=new, headers={"Idempotency-Key": "k1"}) as r:
                assert r.status == 201 and await r.json() == first  # the retry: same outcome
            async with http.post("/shares", json=new) as r:  # a second create, no key
                assert r.status == 409
                assert (await r.json())["error"]["type"] == "ShareExists"

            async with http.post("/shares", json={"share_id": "x", "size_gb": "big"}) as r:
                assert r.status == 400
                assert (await r.json())["error"]["type"] == "InvalidArguments"
            async with http.post("/shares", data=b"not json") as r:
                assert r.status == 400
            async with http.post("/shares", json={"share_id": "huge", "size_gb": 500}) as r:
                assert r.status == 413  # the default backend's 100 GB quota
            async with http.get("/shares?limit=many") as r:
                assert r.status == 400

            async with http.get("/shares/projects") as r:
                assert r.status == 200 and (await r.json())["id"] == "projects"
            async with http.get("/shares/nothing-here") as r:
                assert r.status == 404
                error = (await r.json())["error"]
                assert error["type"].endswith("NotFound") and not error["retryable"]

            async def create(i: int) -> int:
                body = {"share_id": f"s{i}", "size_gb": 1}
                async with http.post("/shares", json=body) as r:
                    return r.status

            assert await asyncio.gather(*(create(i) for i in range(20))) == [201] * 20
            async with http.get("/shares?limit=5") as r:
                page = await r.json()
            assert page["count"] == 5 and page["next"] is not None
            async with http.get("/shares") as r:
                assert (await r.json())["count"] == 21

            async with http.delete("/shares/projects") as r:
                assert r.status == 200 and (await r.json())["deleted"] is True
            async with http.get("/shares/projects") as r:
                assert r.status == 404

    run(main())


def _read_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([proc.stdout], [], [], remaining)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith(prefix):
                return line
    raise AssertionError(f"no {prefix!r} line from the front door (exit {proc.poll()})")


def _get(url: str) -> tuple[int, dict[str, str], Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def test_the_command_serves_and_says_503_while_the_daemon_is_away(daemon):
    proc, endpoint = daemon
    door = subprocess.Popen(
        [
            *(sys.executable, "-m", "share_service.http"),
            *("--endpoint", endpoint, "--port", "0", "--timeout", "1"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        url = _read_line(door, "share front door on ").split(" on ", 1)[1].strip()
        status, _, body = _get(url)
        assert status == 200 and body["count"] == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        status, headers, body = _get(url)
        assert status == 503 and headers["Retry-After"] == "1"
        assert body["error"]["type"] == "DeadlineExceeded" and body["error"]["retryable"]
        door.send_signal(signal.SIGTERM)
        assert door.wait(30) == 0
    finally:
        if door.poll() is None:
            door.kill()
            door.wait(10)
