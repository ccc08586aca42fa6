"""`actorsctl`: operator commands. Network commands arrive with the transport."""

from __future__ import annotations

import json
import sys

import click

from actors import __version__
from actors.config import load_config
from actors.errors import ActorsError
from actors.service_actor import plan_backends


@click.group()
@click.version_option(__version__, prog_name="actorsctl")
def cli() -> None:
    """Control and inspect service-actors services."""


@cli.command("check-config")
@click.argument("path", type=click.Path())
def check_config(path: str) -> None:
    """Validate a configuration file: keys, backends, import paths, driver options."""
    try:
        config = load_config(path)
        plans = plan_backends(config, file=path)
    except ActorsError as exc:
        click.echo(f"{type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    click.echo(
        json.dumps(
            {"host": config.host, "runtime": config.runtime, "backends": [p.name for p in plans]}
        )
    )


def main() -> None:
    cli(prog_name="actorsctl")


if __name__ == "__main__":
    main()
