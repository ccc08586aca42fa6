"""`actorsd`: run a service on ZeroMQ until SIGTERM or SIGINT.

With no `--config` it runs the embedded default (tcp://127.0.0.1:5555, one
local directory backend under ./state). Exit codes: 0 clean stop; 2 bad
configuration or an endpoint that cannot be bound, with a one-line reason;
1 the service gave up (its supervisor escalated).
"""

from __future__ import annotations

import os
import sys
import tomllib

from actors.cli._signals import hold_signals_while_starting


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    return None


def _runtime_from(argv: list[str]) -> str | None:
    """The runtime the daemon will use, decided before anything imports gevent.

    The same precedence as the configuration: --runtime, then ACTORS_RUNTIME,
    then `runtime` in the --config file. A file that cannot be read here is
    reported properly later; gevent is then the default, as in the config.
    """
    chosen = _option(argv, "--runtime") or os.environ.get("ACTORS_RUNTIME")
    if chosen:
        return chosen
    path = _option(argv, "--config")
    if path:
        try:
            with open(path, "rb") as f:
                value = tomllib.load(f).get("runtime")
        except (OSError, tomllib.TOMLDecodeError):
            return None
        return value if isinstance(value, str) else None
    return None


def main(argv: list[str] | None = None) -> int:
    hold_signals_while_starting()
    args = sys.argv[1:] if argv is None else argv
    # gevent must patch the standard library before anything else imports it.
    if _runtime_from(args) in (None, "gevent"):
        from gevent import monkey

        monkey.patch_all()
    from actors.cli._daemon import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
