"""What a service publishes as its endpoint: the `advertise` address, not a wildcard bind.

A daemon that binds `tcp://0.0.0.0:5555` (or `tcp://*:5555`, `tcp://[::]:5555`)
listens on every interface, but that address means nothing to another host.
It must say which address others reach it at (`transport.advertise`,
`--advertise`); without one it refuses to start. An advertised port of 0 or
`*`, or none, means the port actually bound.
"""

from __future__ import annotations

from actors.errors import ConfigError

__all__ = ["advertised_endpoint", "is_wildcard"]

_WILDCARDS = ("0.0.0.0", "*", "[::]", "::", "[::0]")


def _split(endpoint: str) -> tuple[str, str, str | None]:
    """(scheme, host, port) of a tcp:// endpoint; port None when absent."""
    scheme, _, rest = endpoint.partition("://")
    if rest.startswith("["):  # [v6]:port
        host, _, tail = rest.partition("]")
        return scheme, host + "]", tail.removeprefix(":") or None
    host, sep, port = rest.rpartition(":")
    return (scheme, host, port) if sep else (scheme, rest, None)


def is_wildcard(endpoint: str) -> bool:
    """True for a tcp:// bind on every interface (0.0.0.0, *, [::])."""
    if not endpoint.startswith("tcp://"):
        return False
    return _split(endpoint)[1] in _WILDCARDS


def advertised_endpoint(bound: str, advertise: str | None) -> str:
    """The endpoint to publish for a server bound at `bound` (its real port known).

    Raises ConfigError for a wildcard bind without `advertise`, or an
    `advertise` that is itself a wildcard or not tcp://, ipc:// or inproc://.
    """
    if advertise is None:
        if is_wildcard(bound):
            raise ConfigError(
                f"bind {bound} listens on every interface: set transport.advertise"
                " (or --advertise) to the tcp://ADDRESS:PORT other hosts reach it at",
                key="transport.advertise",
            )
        return bound
    if not advertise.startswith(("tcp://", "ipc://", "inproc://")):
        raise ConfigError(
            f"advertise {advertise!r} must be a tcp://, ipc:// or inproc:// endpoint",
            key="transport.advertise",
        )
    if is_wildcard(advertise):
        raise ConfigError(
            f"advertise {advertise!r} is a wildcard: give an address other hosts reach",
            key="transport.advertise",
        )
    if not advertise.startswith("tcp://") or not bound.startswith("tcp://"):
        return advertise
    scheme, host, port = _split(advertise)
    if port in (None, "0", "*"):
        port = _split(bound)[2]
    return f"{scheme}://{host}:{port}"
