"""CURVE encryption and client-key allowlists (ZAP).

The server has a keypair; clients present theirs. A ZAP handler in the
server's ZeroMQ context admits a client only if its public key is in the
allowlist directory (files as written by `generate_keypair`, re-read when the
directory changes). A refused client's handshake fails: nothing it sends is
ever dispatched.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
import zmq.auth

from transport._io import SocketLoop, make_loop
from transport.errors import TransportError
from transport.ratelimit import RateLimitedLog

__all__ = [
    "ClientSecurity",
    "KeyFileError",
    "ServerSecurity",
    "ZapHandler",
    "generate_keypair",
    "load_keypair",
]

log = logging.getLogger("transport.security")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"


class KeyFileError(TransportError):
    """A key file is missing or unreadable."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"key file {path}: {reason}", path=path, reason=reason)


def generate_keypair(directory: str | Path, name: str) -> tuple[Path, Path]:
    """Write NAME.key (public) and NAME.key_secret (secret, mode 0600) into DIR."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(str(directory), name)
    os.chmod(secret, 0o600)
    return Path(public), Path(secret)


def load_keypair(path: str | Path) -> tuple[bytes, bytes | None]:
    """(public, secret) z85 keys from a key file; secret is None for a .key file."""
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise KeyFileError(str(path), str(exc)) from None
    return public, secret


@dataclass
class ServerSecurity:
    """The server's secret key file and the directory of allowed client keys."""

    secret_key_file: Path
    allowed_keys_dir: Path
    public_key: bytes = b""
    _secret: bytes = b""
    _allowed: set[bytes] = field(default_factory=set)
    _dir_stamp: float = -1.0

    def __post_init__(self) -> None:
        self.secret_key_file = Path(self.secret_key_file)
        self.allowed_keys_dir = Path(self.allowed_keys_dir)
        public, secret = load_keypair(self.secret_key_file)
        if secret is None:
            raise KeyFileError(str(self.secret_key_file), "holds no secret key")
        self.public_key, self._secret = public, secret
        if not self.allowed_keys_dir.is_dir():
            raise KeyFileError(str(self.allowed_keys_dir), "allowlist directory does not exist")
        self.reload()

    def reload(self) -> None:
        """Re-read the allowlist if the directory changed."""
        try:
            stamp = self.allowed_keys_dir.stat().st_mtime
        except OSError:
            return
        if stamp == self._dir_stamp:
            return
        allowed = set()
        for path in self.allowed_keys_dir.glob("*.key"):
            try:
                allowed.add(zmq.utils.z85.decode(load_keypair(path)[0]))
            except (TransportError, ValueError) as exc:
                log.warning("skipping client key %s: %s", path, exc)
        self._allowed, self._dir_stamp = allowed, stamp

    def allows(self, client_key: bytes) -> bool:
        self.reload()
        return client_key in self._allowed

    def apply(self, sock: Any) -> None:
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self._secret)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public_key)
        sock.setsockopt(zmq.ZAP_DOMAIN, b"service-actors")


@dataclass
class ClientSecurity:
    """A client's keypair and the server's public key.

    The server's key comes from a file (`server_public_key_file`) or as a z85
    value (`server_public_key`, e.g. read from the server's registry row);
    `for_server` gives the same client keypair aimed at another server.
    """

    secret_key_file: Path
    server_public_key_file: Path | None = None
    server_public_key: bytes | None = None

    def for_server(self, server_public_key: bytes | str) -> ClientSecurity:
        """This client's keypair with `server_public_key` (z85) as the server's."""
        key = server_public_key
        return ClientSecurity(
            self.secret_key_file, None, key.encode() if isinstance(key, str) else key
        )

    def server_key(self) -> bytes:
        """The server's public key (z85)."""
        if self.server_public_key is not None:
            return self.server_public_key
        if self.server_public_key_file is None:
            raise KeyFileError("(none)", "no server public key given (file or value)")
        return load_keypair(self.server_public_key_file)[0]

    def apply(self, sock: Any) -> None:
        public, secret = load_keypair(self.secret_key_file)
        if secret is None:
            raise KeyFileError(str(self.secret_key_file), "holds no secret key")
        sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.server_key())


class ZapHandler:
    """Answers ZeroMQ's authentication requests for one context."""

    def __init__(self, context: Any, security: ServerSecurity, *, green: bool) -> None:
        self.security = security
        self.accepted = 0
        self.refused = 0
        self._context = context
        self._loop: SocketLoop = make_loop(green, self._bind, self._on_frames, "zap", context)
        self._refusals = RateLimitedLog(log)

    def _bind(self, context: Any) -> Any:
        sock = context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(ZAP_ENDPOINT)
        return sock

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop(0.1)

    def _on_frames(self, frames: list[bytes]) -> None:
        # [peer, b"", version, request_id, domain, address, identity, mechanism, *credentials]
        if len(frames) < 8:
            return
        peer, _, version, request_id, _domain, address, _identity, mechanism = frames[:8]
        credentials = frames[8:]
        ok = (
            version == b"1.0"
            and mechanism == b"CURVE"
            and len(credentials) == 1
            and self.security.allows(credentials[0])
        )
        if ok:
            self.accepted += 1
            status, text, user = b"200", b"OK", zmq.utils.z85.encode(credentials[0])
        else:
            self.refused += 1
            status, text, user = b"400", b"client key not allowed", b""
            self._refusals.warn(  # a refused client retries on its own: not one line each
                "refused",
                "refused a client from %s: key not in %s",
                address.decode(errors="replace"),
                self.security.allowed_keys_dir,
            )
        self._loop.send([peer, b"", b"1.0", request_id, status, text, user, b""])
