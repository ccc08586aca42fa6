"""Configuration: a TOML file, `ACTORS_*` environment variables, keyword arguments.

Precedence, highest first: keyword arguments, environment, file, defaults.
Nested keys in the environment use `__`: `ACTORS_SUPERVISION__MAX_RESTARTS=3`.
Every problem is a `ConfigError` naming the file, the key and the reason.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal, TypeVar

import pydantic
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from actors._advertise import advertised_endpoint
from actors.errors import ConfigError
from actors.loading import load_object
from actors.runtime import (
    DEFAULT_CHANGES_BACKLOG,
    DEFAULT_CHANGES_WORKERS,
    DEFAULT_QUEUE,
    DEFAULT_SYSTEM_WORKERS,
    DEFAULT_WORKERS,
)
from actors.supervision import Backoff, SupervisionPolicy

__all__ = [
    "DEFAULT_SERVICE_GROUP",
    "BackendConfig",
    "ServiceConfig",
    "TransportConfig",
    "default_config",
    "load_config",
]

FENCE_SHARE = 0.5
"""Of service_down_time: how old this host's own heartbeat may be before it starts
no operation another host may take over (see Heartbeat.fenced)."""

_BACKEND_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class BackendConfig(BaseModel):
    """One backend: which manager and driver classes, and the driver's options."""

    model_config = ConfigDict(extra="forbid")

    manager: str = Field(
        description="import path of the manager: a ManagerActor subclass, or a plain"
        " module, object, factory or class whose RPC methods `rpc_methods` lists"
    )
    driver: str = Field(
        description="import path of the driver: a DriverActor subclass, or a module,"
        " object, factory or class with listed operations (see `driver_operations`)"
    )
    driver_operations: list[str] | None = Field(
        None,
        description="operations of a driver that is not a DriverActor, besides those it"
        " declares (@operation marks, a driver kind's abstract base class)",
    )
    rpc_methods: list[str] | None = Field(
        None, description="the methods a manager that is not a ManagerActor exposes to RPC"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="driver options")
    manager_options: dict[str, Any] = Field(
        default_factory=dict, description="options of the manager (its own model validates them)"
    )
    driver_timeout: float = Field(600.0, gt=0, description="deadline of one driver operation")
    driver_supervision: SupervisionPolicy = SupervisionPolicy()
    setup_backoff: Backoff | None = Field(
        None, description="retries of a failing driver setup (default: the driver's own)"
    )
    mailbox_capacity: int | None = Field(None, ge=1)


_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]+)):(?P<port>\d{1,5})$")


def split_host_port(bind: str) -> tuple[str, int]:
    """`host:port` or `[v6-address]:port` -> (host, port); ValueError saying why not."""
    match = _HOST_PORT.match(bind)
    if match is None or int(match["port"]) > 65535:
        raise ValueError(f"metrics_bind must be host:port or [v6-address]:port, not {bind!r}")
    return match["v6"] or match["host"], int(match["port"])


def _renamed(name: str, old: str) -> AliasChoices:
    """Accept a renamed key under its old name too, in files, arguments and `ACTORS_*`.

    A field with an alias no longer gets the `ACTORS_` prefix for its
    environment variable, so the prefixed names are listed here as well.
    """
    return AliasChoices(name, old, f"actors_{name}", f"actors_{old}")


class TransportConfig(BaseModel):
    """Where and how the daemon listens."""

    model_config = ConfigDict(extra="forbid")

    bind: str = Field("tcp://127.0.0.1:5555", description="ZeroMQ endpoint to bind")
    advertise: str | None = Field(
        None,
        description="endpoint published in the registry for other hosts (a port of 0 or"
        " none: the bound one); required with a wildcard bind (0.0.0.0, *, [::])",
    )
    server_secret_key: Path | None = Field(None, description="CURVE secret key file")
    client_keys_dir: Path | None = Field(None, description="directory of allowed client keys")
    client_secret_key: Path | None = Field(
        None,
        description="this daemon's own CURVE client keypair (secret key file), for its"
        " outgoing requests (capability reports) to servers that use CURVE",
    )
    allow_insecure: bool = Field(False, description="allow binding beyond loopback without CURVE")
    max_message_bytes: int = Field(1 << 20, ge=1024)
    heartbeat: float = Field(
        5.0,
        ge=0.1,
        le=600,
        description="seconds between ZMTP heartbeats on each connection; a peer that"
        " answers none for three intervals is dropped (its requests fail at once)",
    )

    @model_validator(mode="after")
    def _check_curve(self) -> TransportConfig:
        if (self.server_secret_key is None) != (self.client_keys_dir is None):
            raise ValueError("set both server_secret_key and client_keys_dir, or neither")
        if not self.bind.startswith(("tcp://", "ipc://", "inproc://")):
            raise ValueError("bind must be a tcp://, ipc:// or inproc:// endpoint")
        if self.advertise is not None:
            try:  # its form; the port is known once bound
                advertised_endpoint(self.bind, self.advertise)
            except ConfigError as exc:
                raise ValueError(str(exc).removeprefix("transport.advertise: ")) from None
        if self.bind.startswith("tcp://"):
            _, _, port = self.bind.rpartition(":")
            if port != "*" and not (port.isdigit() and int(port) <= 65535):
                # ZeroMQ would wrap 70000 round to another port without a word.
                raise ValueError(f"bind {self.bind!r} needs a port 0-65535 (or *) after ':'")
        return self


class ServiceConfig(BaseSettings):
    """Everything a service needs to start."""

    model_config = SettingsConfigDict(
        env_prefix="ACTORS_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    host: str = Field(default_factory=socket.gethostname, min_length=1)
    binary: str = "actors-service"
    topic: str = Field(
        "actors",
        max_length=249,
        description="the topic its services are found by; keys of requests to any one of"
        " them are scoped `topic:<topic>` (249 characters at most, so that the scope fits"
        " the 255 of every name)",
    )
    runtime: Literal["gevent", "threading"] = "gevent"
    mailbox_capacity: int = Field(1000, ge=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = Field(
        None, description="actorsd's log level (overrides --log-level; reloaded on SIGHUP)"
    )
    default_timeout: float = Field(60.0, gt=0)
    shutdown_timeout: float = Field(30.0, gt=0)
    graceful_shutdown_timeout: float = Field(
        60.0, ge=0, description="SIGTERM: how long in-flight work may finish before it is cut"
    )
    supervision: SupervisionPolicy = SupervisionPolicy()
    enabled_backends: list[str] = Field(default_factory=list)
    backends: dict[str, BackendConfig] = Field(default_factory=dict)
    state_dir: Path = Path("./state")
    transport: TransportConfig = TransportConfig()
    metrics_bind: str | None = Field(
        None,
        description="host:port where actorsd serves Prometheus metrics at /metrics (None: off)",
    )
    registry: bool = Field(True, description="keep this service's rows and heartbeats")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: a SQLite file in state_dir"
    )
    report_interval: float = Field(10.0, gt=0, description="seconds between heartbeats")
    service_down_time: float = Field(
        60.0, gt=0, description="a service without a heartbeat this long is down"
    )
    capability_topic: str | None = Field(
        None, description="publish each backend's get_stats() to this topic (None: off)"
    )
    capability_interval: float = Field(60.0, gt=0, description="seconds between reports")
    journal: bool = Field(
        True,
        description="journal @rpc(journal=True) requests in the registry's database"
        " (without the registry they run unjournaled)",
    )
    journal_retention: float = Field(
        7 * 86400.0, gt=0, description="seconds a finished operation is kept"
    )
    journal_prune_interval: float = Field(
        3600.0, gt=0, description="seconds between prunes of finished operations"
    )
    journal_max_pending: int = Field(
        10_000, ge=1, description="operations waiting for a commit before Busy"
    )
    memory_trim_interval: float = Field(
        60.0,
        ge=0,
        description="seconds between returns of free heap memory to the OS"
        " (glibc malloc_trim, when over 32 MiB is free); 0: never",
    )
    offload_workers: int = Field(
        DEFAULT_WORKERS,
        ge=1,
        le=64,
        description="threads for blocking work done for clients (database reads, listings);"
        " few, as each competes with the actors for the GIL",
    )
    offload_queue: int = Field(
        DEFAULT_QUEUE,
        ge=0,
        le=100_000,
        description="such calls waiting for a thread; beyond them a request gets Overloaded",
    )
    offload_system_workers: int = Field(
        DEFAULT_SYSTEM_WORKERS,
        ge=1,
        le=64,
        description="threads for the service's own upkeep (heartbeats, capability"
        " reports, journal recovery and pruning), which is never refused",
    )
    offload_changes_workers: int = Field(
        DEFAULT_CHANGES_WORKERS,
        ge=1,
        le=64,
        description="threads for the database steps of changes under way (never refused)",
        validation_alias=_renamed("offload_changes_workers", "offload_operations_workers"),
    )
    offload_changes_backlog: int = Field(
        DEFAULT_CHANGES_BACKLOG,
        ge=1,
        le=1_000_000,
        description="such steps running or waiting at which a new change gets Overloaded",
        validation_alias=_renamed("offload_changes_backlog", "offload_operations_backlog"),
    )

    @model_validator(mode="after")
    def _check_backends(self) -> ServiceConfig:
        if "@" in self.host or "/" in self.host:
            raise ValueError("host must not contain '@' or '/'")
        for name in self.backends:
            if not _BACKEND_NAME.match(name):
                raise ValueError(f"backend name {name!r} must match {_BACKEND_NAME.pattern}")
        missing = [b for b in self.enabled_backends if b not in self.backends]
        if missing:
            raise ValueError(f"enabled_backends names undefined backends: {', '.join(missing)}")
        if len(set(self.enabled_backends)) != len(self.enabled_backends):
            raise ValueError("enabled_backends lists a backend twice")
        if self.metrics_bind is not None:
            split_host_port(self.metrics_bind)
        fence = self.service_down_time * FENCE_SHARE
        if self.report_interval >= fence:
            # Just before each round ends its last heartbeat is report_interval
            # old and more: the host would refuse topic work (HostFenced) every
            # round, as all hosts configured alike would together.
            raise ValueError(
                f"report_interval ({self.report_interval:g}s) must be under half of"
                f" service_down_time ({self.service_down_time:g}s): from {fence:g}s"
                " without a heartbeat a host starts no topic operation"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)

    def manager_name(self, backend: str) -> str:
        """The stable name of a backend's manager: `host@backend`."""
        return f"{self.host}@{backend}"


def _default_service() -> Any:
    """The default service's configuration function (see `default_config`)."""
    named = os.environ.get("ACTORS_DEFAULT_SERVICE")
    if named:
        return load_object(named)
    found = sorted(entry_points(group=DEFAULT_SERVICE_GROUP), key=lambda e: e.name)
    if len(found) != 1:
        which = ", ".join(f"{e.name} ({e.value})" for e in found) or "none is installed"
        raise ConfigError(
            f"no single default service ({which}): pass --config FILE,"
            " or set ACTORS_DEFAULT_SERVICE=package.module:function",
            key=DEFAULT_SERVICE_GROUP,
        )
    try:
        return found[0].load()
    except Exception as exc:  # an installed application that does not import
        raise ConfigError(
            f"cannot load the default service {found[0].value}: {exc}", key=DEFAULT_SERVICE_GROUP
        ) from None


def load_config(path: str | Path | None = None, **overrides: Any) -> ServiceConfig:
    """Build and validate the configuration; raise ConfigError on any problem."""
    file = str(path) if path is not None else None
    cls: type[ServiceConfig] = ServiceConfig
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError("no such file", file=file)
        try:
            tomllib.loads(p.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
            raise ConfigError(f"not valid TOML: {exc}", file=file) from None
        cls = type(
            "ServiceConfigFromFile",
            (ServiceConfig,),
            {"model_config": {**ServiceConfig.model_config, "toml_file": str(p)}},
        )
    try:
        return cls(**overrides)
    except pydantic.ValidationError as exc:
        error = config_error(exc, file)
        source = _source_of(error.details.get("key"), overrides)
        raise (config_error(exc, source) if source else error) from None
    except SettingsError as exc:  # e.g. ACTORS_ENABLED_BACKENDS that is not JSON
        raise ConfigError(str(exc), file="environment") from None


def _source_of(key: str | None, overrides: dict[str, Any]) -> str | None:
    """Where a bad value came from when it was not the file: an argument or ACTORS_*."""
    if not key:
        return None
    parts = key.split(".")
    if parts[0] in overrides:
        return "arguments"
    for depth in range(len(parts), 0, -1):
        name = "ACTORS_" + "__".join(parts[:depth]).upper()
        if name in os.environ:
            return f"${name}"
    return None


OptionsModel = TypeVar("OptionsModel", bound=BaseModel)


def validate_options(
    model: type[OptionsModel], raw: dict[str, Any], *, key: str, file: str | None = None
) -> OptionsModel:
    """A backend's driver or manager options, validated by their model.

    A ConfigError names the file and the full key (`backends.fast.options.root`).
    """
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError as exc:
        errors = exc.errors()
        loc = ".".join(str(p) for p in errors[0].get("loc", ()))
        reasons = "; ".join(
            [str(errors[0].get("msg"))]
            + [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in errors[1:]]
        )
        raise ConfigError(reasons, file=file, key=f"{key}.{loc}" if loc else key) from None


def config_error(exc: pydantic.ValidationError, file: str | None) -> ConfigError:
    """Turn a pydantic error into a ConfigError naming the first bad key."""
    errors = exc.errors()
    first = errors[0]
    key = ".".join(str(p) for p in first.get("loc", ())) or None
    # The first key is already in front of the message (file:key: reason).
    reasons = "; ".join(
        [str(first.get("msg"))]
        + [
            (".".join(str(p) for p in e.get("loc", ())) + ": " if e.get("loc") else "")
            + str(e.get("msg"))
            for e in errors[1:]
        ]
    )
    return ConfigError(reasons, file=file, key=key)


DEFAULT_SERVICE_GROUP = "actors.default_service"
"""The entry point group naming the default service: a callable taking the
state directory (a resolved Path) and returning configuration values."""


def default_config(state_dir: str | Path = "state", **overrides: Any) -> ServiceConfig:
    """The embedded default: what `actorsd` runs with no `--config`.

    The framework ships no service of its own: the values come from the
    default service, named by `ACTORS_DEFAULT_SERVICE` (`package.module:function`)
    or else by the one entry point of the `actors.default_service` group an
    installed application provides (the share service's is
    `share_service.defaults:default_service`). Bound to tcp://127.0.0.1:5555,
    its state (the SQLite registry) in `state_dir`. Environment variables still
    apply; `overrides` win over everything.
    """
    state = Path(state_dir).resolve()
    values: dict[str, Any] = {"state_dir": state, **_default_service()(state), **overrides}
    try:
        return ServiceConfig(**values)
    except pydantic.ValidationError as exc:
        raise config_error(exc, None) from None
