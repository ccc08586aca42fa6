"""`actorsd`: run a service on ZeroMQ until SIGTERM or SIGINT.

With no `--config` it runs the embedded default (tcp://127.0.0.1:5555, one
local directory backend under ./state). Exit codes: 0 clean stop; 2 bad
configuration or an endpoint that cannot be bound, with a one-line reason;
1 the service gave up (its supervisor escalated).
"""

from __future__ import annotations

import sys


def _runtime_from(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--runtime" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--runtime="):
            return arg.split("=", 1)[1]
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # gevent must patch the standard library before anything else imports it.
    if _runtime_from(args) in (None, "gevent"):
        from gevent import monkey

        monkey.patch_all()
    from actors.cli._daemon import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
