"""`actorsd`: run a service until SIGTERM or SIGINT.

Until the ZeroMQ transport lands this runs the service in-process only (no
network). Exit codes: 0 clean stop, 2 bad configuration, 1 failed service.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    runtime = "gevent"
    for i, arg in enumerate(args):
        if arg == "--runtime" and i + 1 < len(args):
            runtime = args[i + 1]
        elif arg.startswith("--runtime="):
            runtime = arg.split("=", 1)[1]
    if runtime == "gevent":
        from gevent import monkey

        monkey.patch_all()
    return _run(args)


def _run(argv: list[str]) -> int:
    import logging
    import signal

    import click

    from actors.config import load_config
    from actors.errors import ActorsError
    from actors.service import Service

    @click.command()
    @click.option("--config", "config_file", type=click.Path(), help="TOML configuration file")
    @click.option("--runtime", type=click.Choice(["gevent", "threading"]), default=None)
    @click.option("--log-level", default="INFO", show_default=True)
    def cli(config_file: str | None, runtime: str | None, log_level: str) -> None:
        logging.basicConfig(
            level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        try:
            config = load_config(config_file, **({"runtime": runtime} if runtime else {}))
            service = Service(config, config_file=config_file).start()
        except ActorsError as exc:
            click.echo(f"actorsd: {type(exc).__name__}: {exc}", err=True)
            sys.exit(2)
        stop = service.system.runtime.event()  # type: ignore[union-attr]
        if config.runtime == "gevent":
            import gevent

            gevent.signal_handler(signal.SIGTERM, stop.set)
            gevent.signal_handler(signal.SIGINT, stop.set)
        else:
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            signal.signal(signal.SIGINT, lambda *_: stop.set())
        managers = service.actor.managers() if service.actor else []
        click.echo(
            f"actorsd: {service.name} running backends: {', '.join(managers) or 'none'}", err=True
        )
        while not stop.wait(1.0):
            if service.failed is not None:
                click.echo(f"actorsd: service failed: {service.failed}", err=True)
                service.stop()
                sys.exit(1)
        ok = service.stop()
        click.echo("actorsd: stopped" + ("" if ok else " (some actors had to be killed)"), err=True)
        sys.exit(0)

    try:
        cli.main(args=argv, prog_name="actorsd", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
