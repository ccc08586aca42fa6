"""The body of `actorsd` (imported after gevent's monkey-patching)."""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys

import click
import pydantic
import zmq

from actors import __version__
from actors._advertise import advertised_endpoint
from actors.cli._signals import EARLY_STOP
from actors.cli._systemd import SystemdNotifier
from actors.config import ServiceConfig, TransportConfig, default_config, load_config
from actors.errors import ActorsError, ConfigError, DeadlineExceeded
from actors.logs import FORMATS, configure_logging, quiet_libraries
from actors.service import Service
from transport.errors import TransportError
from transport.protocol import Limits
from transport.security import ServerSecurity
from transport.server import BindError, InsecureBind, RpcServer, is_loopback_endpoint

log = logging.getLogger("actorsd")

EXIT_CONFIG = 2
"""Bad configuration, or an endpoint or state directory in use: restarting will not help
(docs/actorsd.service has RestartPreventExitStatus=2)."""


def _fail(message: str) -> None:
    """Refuse to start: one plain line on stderr, exit 2."""
    logging.shutdown()  # what was logged before comes first
    click.echo(f"actorsd: {message}", err=True)
    sys.exit(EXIT_CONFIG)


def _check_endpoint_free(endpoint: str) -> None:
    """Refuse before anything starts when a TCP endpoint is taken (a second daemon).

    Serving comes after init_host (start phases), so without this a second
    daemon would set up its drivers and touch the registry before finding the
    port in use. A fixed port only; `:0` and `:*` pick a free one.
    """
    if not endpoint.startswith("tcp://") or endpoint.rsplit(":", 1)[-1] in ("0", "*"):
        return
    context = zmq.Context()
    sock = context.socket(zmq.ROUTER)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(endpoint)
    except zmq.ZMQError as exc:
        raise BindError(endpoint, exc.strerror) from None
    finally:
        sock.close()
        context.term()


@click.command()
@click.version_option(__version__, prog_name="actorsd")
@click.option("--config", "config_file", type=click.Path(), help="TOML configuration file")
@click.option("--runtime", type=click.Choice(["gevent", "threading"]), default=None)
@click.option("--bind", default=None, help="override transport.bind")
@click.option(
    "--advertise",
    default=None,
    help="endpoint other hosts reach this daemon at (overrides transport.advertise)",
)
@click.option(
    "--state-dir",
    default="state",
    show_default=True,
    help="state directory of the embedded default (no --config)",
)
@click.option("--insecure", is_flag=True, help="allow binding beyond loopback without CURVE")
@click.option(
    "--metrics-bind",
    default=None,
    help="serve Prometheus metrics at http://HOST:PORT/metrics (overrides metrics_bind)",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
)
@click.option(
    "--log-format",
    envvar="ACTORS_LOG_FORMAT",
    default="auto",
    show_default=True,
    type=click.Choice(FORMATS),
    help="text (with timestamps), journald (<N> priority prefix, no timestamp), json (one "
    "object a line); auto: journald when stderr is the journal, else text. "
    "Env: ACTORS_LOG_FORMAT",
)
def cli(
    config_file: str | None,
    runtime: str | None,
    bind: str | None,
    advertise: str | None,
    state_dir: str,
    insecure: bool,
    metrics_bind: str | None,
    log_level: str,
    log_format: str,
) -> None:
    """Run a service until SIGTERM or SIGINT.

    Exit codes: 0 clean stop; 1 the service gave up (its supervisor escalated);
    2 bad configuration, or an endpoint or state directory in use.
    """
    configure_logging(log_level, log_format)
    overrides: dict[str, object] = {"runtime": runtime} if runtime else {}
    if metrics_bind:
        overrides["metrics_bind"] = metrics_bind
    try:
        config: ServiceConfig = (
            load_config(config_file, **overrides)
            if config_file
            else default_config(state_dir, **overrides)
        )
        transport = config.transport
        flags = {k: v for k, v in (("bind", bind), ("advertise", advertise)) if v}
        if flags:  # validated like the file's (a port out of range, no scheme)
            try:
                transport = TransportConfig.model_validate({**transport.model_dump(), **flags})
            except pydantic.ValidationError as exc:
                reason = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
                raise ConfigError(reason, key=" ".join(f"--{k}" for k in flags)) from None
        security = None
        if transport.server_secret_key is not None and transport.client_keys_dir is not None:
            security = ServerSecurity(transport.server_secret_key, transport.client_keys_dir)
        if config.log_level:
            logging.getLogger().setLevel(config.log_level)
            quiet_libraries(logging.getLogger().level)
        allow_insecure = insecure or transport.allow_insecure
        if security is None and not allow_insecure and not is_loopback_endpoint(transport.bind):
            raise InsecureBind(transport.bind)  # before anything starts, like a taken port
        if transport.advertise is None:  # a wildcard bind publishes nothing reachable
            advertised_endpoint(transport.bind, None)
        _check_endpoint_free(transport.bind)
        service = Service(config, config_file=config_file, config_overrides=overrides)
    except TransportError as exc:  # ActorsError (config, load) and key files
        _fail(f"{type(exc).__name__}: {exc}")
        return
    metrics = None
    if config.metrics_bind:  # bound before anything starts, like the transport's port
        try:
            from actors.metrics import serve_metrics  # needs the `metrics` extra

            metrics = serve_metrics(service, config.metrics_bind)
        except ImportError as exc:
            _fail(
                "metrics_bind needs prometheus_client:"
                f" pip install 'service-actors[metrics]' ({exc})"
            )
            return
        except OSError as exc:  # the port is taken, the address is not ours
            _fail(f"cannot serve metrics on {config.metrics_bind}: {exc.strerror or exc}")
            return
    try:
        service.start(defer_ready=True)
    except (TransportError, OSError) as exc:  # OSError: e.g. a state_dir it cannot create
        if metrics is not None:
            metrics.stop()
        _fail(f"{type(exc).__name__}: {exc}")
        return
    try:
        server = service.serve(
            transport.bind,
            security=security,
            allow_insecure=allow_insecure,
            limits=Limits(
                max_message_bytes=transport.max_message_bytes,
                default_timeout=min(config.default_timeout, Limits.max_timeout),
            ),
            advertise=transport.advertise,
        )
    except TransportError as exc:
        service.stop()
        if metrics is not None:
            metrics.stop()
        _fail(f"{type(exc).__name__}: {exc}")
        return
    actor_runtime = service.system.runtime  # type: ignore[union-attr]
    stop, urgent = actor_runtime.event(), actor_runtime.event()
    if EARLY_STOP:  # SIGTERM/SIGINT while starting: stop as soon as it serves
        stop.set()

    def on_stop_signal(*_: object) -> None:  # the first asks for a drain, the second cuts it
        (urgent if stop.is_set() else stop).set()

    reload_requested: list[bool] = []

    def on_reload_signal(*_: object) -> None:  # SIGHUP: handled by the main loop, not here
        reload_requested.append(True)

    def dump(*_: object) -> None:  # SIGUSR1: what every actor is doing, in the log
        for status in service.status():
            log.warning("status %s", status)

    if actor_runtime.name == "gevent":
        import gevent

        gevent.signal_handler(signal.SIGTERM, on_stop_signal)
        gevent.signal_handler(signal.SIGINT, on_stop_signal)
        gevent.signal_handler(signal.SIGUSR1, dump)
        gevent.signal_handler(signal.SIGHUP, on_reload_signal)
    else:
        signal.signal(signal.SIGTERM, on_stop_signal)
        signal.signal(signal.SIGINT, on_stop_signal)
        signal.signal(signal.SIGUSR1, dump)
        signal.signal(signal.SIGHUP, on_reload_signal)
    service.ready()  # phases 4 and 5, now that the transport accepts requests
    managers = service.actor.managers() if service.actor else []
    log.info(
        "%s listening on %s%s; backends: %s%s",
        service.name,
        server.endpoint,
        " (CURVE)" if security else "",
        ", ".join(managers) or "none",
        f"; metrics on {metrics.url}" if metrics else "",
    )
    for name, error in service.backend_errors.items():
        log.error("backend %s failed to start: %s", name, error)
    systemd = SystemdNotifier()
    systemd.ready(f"serving {len(managers)} backend(s) on {server.endpoint}")
    tick = min(1.0, systemd.watchdog_interval or 1.0)
    while not stop.wait(tick):
        if service.failed is not None:
            log.critical("service gave up: %s", service.failed)
            systemd.stopping(f"gave up: {service.failed}")
            service.stop()
            sys.exit(1)
        systemd.watchdog()  # only while healthy: a hung loop makes systemd restart us
        if reload_requested:
            reload_requested.clear()
            _reload(service, config_file, systemd, server, log_level)
    grace = service.config.graceful_shutdown_timeout  # as reloaded, if it was
    log.info("draining (at most %gs; signal again to stop now)", grace)
    systemd.stopping("draining in-flight requests")
    drained = service.drain(grace, abort=urgent)
    if not drained:
        log.warning("stopping with work in flight (it is journaled as interrupted)")
    ok = service.stop()
    if metrics is not None:
        metrics.stop()
    log.info("stopped%s", "" if ok else " (some actors had to be killed)")
    # Stopped: a signal now (a second Ctrl-C) must not turn exit 0 into a kill
    # while the interpreter shuts down and restores the default handlers.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
    sys.exit(0)


def _reload(
    service: Service,
    config_file: str | None,
    systemd: SystemdNotifier,
    server: RpcServer,
    log_level: str,
) -> None:
    """SIGHUP: read the file again and apply what can change; say what needs a restart."""
    if config_file is None:
        log.warning("SIGHUP ignored: no --config file to reload")
        return
    systemd.reloading()
    try:
        changes = service.reload()
    except DeadlineExceeded as exc:  # the service actor is still applying it
        log.error(
            "reload still running after the deadline, it may be partly applied"
            " (see actorsctl status): %s",
            exc,
        )
    except TransportError as exc:  # ConfigError, LoadError, ActorsError: nothing changed
        log.error("reload refused, nothing changed: %s: %s", type(exc).__name__, exc)
    else:
        # The file's level, or --log-level again if the file no longer sets one.
        logging.getLogger().setLevel(service.config.log_level or log_level.upper())
        quiet_libraries(logging.getLogger().level)
        # Requests over the wire without a timeout get the reloaded default too.
        server.limits = dataclasses.replace(
            server.limits, default_timeout=min(service.config.default_timeout, Limits.max_timeout)
        )
        log.info(
            "reloaded %s: started %s, stopped %s, needs a restart: %s",
            config_file,
            changes["started"] or "none",
            changes["stopped"] or "none",
            changes["needs_restart"] or "nothing",
        )
    systemd.notify("READY=1")


def run(argv: list[str]) -> int:
    try:
        cli.main(args=argv, prog_name="actorsd", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    except ActorsError as exc:  # pragma: no cover - last resort, one line
        click.echo(f"actorsd: {type(exc).__name__}: {exc}", err=True)
        return 2
    return 0


__all__ = ["run"]
