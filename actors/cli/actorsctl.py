"""`actorsctl`: talk to running services over ZeroMQ, and manage keys.

It imports no service: an error type it does not know (a service's own, such
as the share service's `QuotaExceeded`) arrives as `RemoteError` carrying the
remote type name, message, details and `retryable` flag, and is shown by that
name exactly as the service raised it.
"""

from __future__ import annotations

import difflib
import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
import zmq

from actors import __version__
from transport.client import RpcClient, fanout
from transport.errors import AuthenticationFailed, RemoteError, TransportError
from transport.security import ClientSecurity, generate_keypair

if TYPE_CHECKING:  # the registry stack loads only in the commands that use it (issue #20)
    from actors.config import ServiceConfig
    from actors.registry import Migrations, Registry
    from actors.registry.journal import OperationRecord

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"

# Exit codes (sysexits(3) where one fits); listed in `actorsctl --help`.
EXIT_OK = 0
EXIT_FAILED = 1  # the service refused or failed the request, or a local error
EXIT_USAGE = 2  # a mistake on the command line
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: nothing answers at the endpoint
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: a retryable error (busy, deadline): try again later

PROBE_TIMEOUT = 1.0
"""How long a connection to the endpoint may take before it counts as nothing answering."""

OPERATION_STATES = ("accepted", "running", "succeeded", "failed", "interrupted")
"""The journal's states (actors.registry.models.OPERATION_STATES, not imported: see #20)."""


class _Session:
    """What error reporting needs to know about this run: the output format, the endpoint."""

    output = "table"
    endpoint: str | None = None


_session = _Session()


class Context:
    def __init__(
        self,
        endpoint: str | None,
        timeout: float,
        output: str,
        client_key: str | None,
        server_key: str | None,
        db: str | None = None,
        config_file: str | None = None,
    ) -> None:
        self._endpoint, self.timeout = endpoint, timeout
        self.output = _session.output = output
        self.db, self.config_file = db, config_file
        # The server key of --server-key is for --endpoint; services found in the
        # registry are reached with the key their row publishes.
        self.security = (
            ClientSecurity(Path(client_key), Path(server_key) if server_key else None)
            if client_key
            else None
        )

    def config(self) -> ServiceConfig:
        """The service configuration of --config, or the default service's."""
        from actors.config import default_config, load_config

        return load_config(self.config_file) if self.config_file else default_config()

    def migrations(self) -> list[Migrations]:
        """The migrations of the applications the configuration hosts (its managers'
        `MIGRATIONS`); none when only --db names the database."""
        if self.db and not self.config_file:
            return []
        from actors.service_actor import plan_backends

        plans = plan_backends(self.config(), file=self.config_file)
        return [p.manager_class.MIGRATIONS for p in plans if p.manager_class.MIGRATIONS]

    def registry(self) -> Registry:
        """The registry named by --db, or by the database of --config (or ./state)."""
        from actors.registry import Registry, sqlite_url_for

        if self.db:
            return Registry(self.db)
        config = self.config()
        registry_file = Path(config.state_dir).expanduser() / "registry.sqlite"
        if config.database_url is None and not registry_file.is_file():
            # Opening it would create an empty database here, and say "no such table".
            raise click.UsageError(
                f"no registry at {registry_file}: run this where"
                " the daemon keeps its state, or pass --config FILE or --db URL"
            )
        url = config.database_url or sqlite_url_for(config.state_dir)
        return Registry(url, service_down_time=config.service_down_time)

    @property
    def endpoint(self) -> str:
        """--endpoint, else ACTORS_ENDPOINT, else where --config binds, else the default."""
        if self._endpoint:
            return self._endpoint
        if os.environ.get("ACTORS_ENDPOINT"):
            return os.environ["ACTORS_ENDPOINT"]
        if self.config_file:
            from actors.config import load_config
            from actors.errors import ActorsError

            try:
                bind = load_config(self.config_file).transport.bind
            except ActorsError as exc:
                raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
            bound = connect_address(bind)
            if bound is None:
                raise click.UsageError(
                    f"the config binds {bind}, an address a client cannot reach from it "
                    "(a port picked at start, or inproc://): pass --endpoint"
                )
            return bound
        return DEFAULT_ENDPOINT

    def client(self, endpoint: str | None = None) -> RpcClient:
        """A client of the endpoint, once something answers there (else exit 69 at once)."""
        endpoint = endpoint or self.endpoint
        _session.endpoint = endpoint
        # Made first: a malformed endpoint or a bad key file is the error to report.
        client = RpcClient(endpoint, timeout=self.timeout, green=False, security=self.security)
        try:
            _run(lambda: probe(endpoint, min(PROBE_TIMEOUT, self.timeout)))
        except SystemExit:
            client.close()
            raise
        return client


class NothingAnswers(TransportError):
    """No connection could be made to the endpoint: no service listens there."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"nothing answers at {endpoint} ({reason})", endpoint=endpoint)


def probe(endpoint: str, timeout: float) -> None:
    """Raise NothingAnswers unless a connection to a tcp:// or ipc:// endpoint can be made.

    ZeroMQ would queue the request and wait out the whole deadline; a plain
    connection attempt says within a second that no one listens. Other
    schemes, and addresses this does not parse, are left to ZeroMQ.
    """
    scheme, sep, rest = endpoint.partition("://")
    try:
        if sep and scheme == "tcp" and ";" not in rest:
            host, _, port = rest.rpartition(":")
            if not port.isdigit():
                return
            host = host.strip("[]")
            with socket.create_connection((host, int(port)), timeout=timeout):
                return
        elif sep and scheme == "ipc" and not rest.startswith("@"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(rest)
    except TimeoutError:
        raise NothingAnswers(endpoint, f"no connection within {timeout:g}s") from None
    except OSError as exc:
        raise NothingAnswers(endpoint, exc.strerror or str(exc)) from None


_EPILOG = f"""\b
Arguments of call, cast and fanout (as httpie writes them):
  --arg name=text     a string: share_id=123 sends "123"
  --arg name:=json    a JSON value: size_gb:=10, force:=true, tags:='["a"]'
  '{{"k": 1}}'          a JSON object of arguments (or --json '{{...}}');
                      --arg values are added to it
\b
Output: --output table|json (-o), before or after the command. With json,
errors too are JSON, on stderr: {{"error": {{"type", "message", ...}}}}.
\b
Exit codes:
  {EXIT_OK}   done
  {EXIT_FAILED}   the service refused or failed the request (an error that a retry
      will not fix), or a local error (a key file, a directory)
  {EXIT_USAGE}   a mistake on the command line
  {EXIT_UNAVAILABLE}  nothing answers at the endpoint (no daemon listening there)
  {EXIT_TEMPFAIL}  retryable (busy, overloaded, deadline passed): the same request may
      succeed later
\b
Start with `actorsctl ping`, then `actorsctl call TARGET describe` to see
what a backend (TARGET: host@backend, or just backend) offers."""


@click.group(epilog=_EPILOG, context_settings={"max_content_width": 100})
@click.version_option(__version__, prog_name="actorsctl")
@click.option(
    "--endpoint",
    default=None,
    help="service endpoint; else ACTORS_ENDPOINT, else where --config binds, "
    f"else {DEFAULT_ENDPOINT}",
)
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="deadline in seconds",
)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="how results (and errors) print; also accepted after the command",
)
@click.option("--client-key", type=click.Path(), help="CURVE client secret key file")
@click.option("--server-key", type=click.Path(), help="CURVE server public key file")
@click.option(
    "--db",
    envvar="ACTORS_DATABASE_URL",
    help="registry database URL (services, service, db, op, ops); else ACTORS_DATABASE_URL",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(),
    help="the daemon's config file: its registry, and where it listens",
)
@click.pass_context
def cli(
    ctx: click.Context,
    endpoint: str | None,
    timeout: float,
    output: str,
    client_key: str | None,
    server_key: str | None,
    db: str | None,
    config_file: str | None,
) -> None:
    """Control and inspect service-actors daemons (actorsd).

    Calls go to --endpoint over ZeroMQ; services, service, db, op and ops
    read the registry database instead (--config or --db).
    """
    if server_key and not client_key:
        raise click.UsageError("--server-key needs --client-key (this client's keypair)")
    ctx.obj = Context(endpoint, timeout, output, client_key, server_key, db, config_file)


def connect_address(bind: str) -> str | None:
    """Where a client reaches a service bound to `bind` (None: a port picked at bind time).

    A wildcard host means this machine: 127.0.0.1 (or ::1 for IPv6).
    """
    scheme, sep, rest = bind.partition("://")
    if not sep or scheme == "inproc":
        return None  # inproc is reachable only inside the serving process
    if scheme != "tcp":
        return bind
    host, _, port = rest.rpartition(":")
    if port in ("0", "*", ""):
        return None
    if host in ("*", "0.0.0.0"):
        host = "127.0.0.1"
    elif host in ("[::]", "::"):
        host = "[::1]"
    return f"tcp://{host}:{port}"


def _by_topic(ctx: Any, topic: str, request: Callable[[Any], Any]) -> Any:
    """`request(topic_client)` on a TopicClient of `topic`, found in the registry."""
    from actors.client import TopicClient

    registry = ctx.registry()
    try:
        with TopicClient(
            registry, topic, timeout=ctx.timeout, green=False, security=ctx.security
        ) as topic_client:
            return _run(lambda: request(topic_client))
    finally:
        registry.close()


def _any(target: str) -> str | None:
    """A topic request's target: "any" means any service of the topic."""
    return None if target == "any" else target


def _parse_args(
    pairs: tuple[str, ...], raw_json: str | None, positional: str | None = None
) -> dict[str, Any]:
    """The call's arguments: a JSON object (`--json` or positional), then `--arg` pairs.

    As in httpie: `name=text` is the string `text`; `name:=json` is a JSON value.
    """
    if raw_json and positional:
        raise click.UsageError("give the JSON arguments once: as ARGS or with --json, not both")
    hint = "--json" if raw_json else "ARGS"
    raw_json = raw_json or positional
    args: dict[str, Any] = {}
    if raw_json:
        try:
            loaded = json.loads(raw_json)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint=hint) from None
        if not isinstance(loaded, dict):
            raise click.BadParameter("must be a JSON object", param_hint=hint)
        args.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        is_json = key.endswith(":")
        key = key.removesuffix(":")
        if not sep or not key:
            raise click.BadParameter(
                f"expected name=text or name:=json, got {pair!r}", param_hint="--arg"
            )
        if not is_json:
            args[key] = value
            continue
        try:
            args[key] = json.loads(value)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(
                f"{key}:= takes a JSON value ({exc}); for a string write {key}={value}",
                param_hint="--arg",
            ) from None
    return args


def _emit(ctx: Context, value: Any) -> None:
    if ctx.output == "json":
        click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))
        return
    click.echo(render_table(value))


def render_table(value: Any) -> str:
    """A readable plain-text rendering of a result."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        columns: list[str] = []
        for row in value:
            columns.extend(k for k in row if k not in columns)
        cells = [[_cell(row.get(c)) for c in columns] for row in value]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
        return "\n".join(line.rstrip() for line in lines)
    if isinstance(value, dict):
        listing = [k for k, v in value.items() if isinstance(v, list) and v and _rows(v)]
        if listing:  # e.g. {"shares": [...], "count": 2}: each list as a table, labelled
            rest = {k: v for k, v in value.items() if k not in listing}
            parts = [f"{k}:\n{render_table(value[k])}" for k in listing]
            return "\n\n".join(parts + ([render_table(rest)] if rest else []))
        width = max((len(str(k)) for k in value), default=0)
        return "\n".join(f"{str(k).ljust(width)}  {_cell(v)}" for k, v in value.items())
    if value is None:
        return "ok"
    if value == []:
        return "(none)"
    return _cell(value)


def _rows(value: list[Any]) -> bool:
    return all(isinstance(v, dict) for v in value)


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def describe_error(exc: TransportError) -> tuple[str, str, bool]:
    """(type name, message, retryable) of an error, as the service sent it.

    A type this process does not know arrives as `RemoteError`: its name and
    message are the remote ones, and whether a retry can succeed is the
    wire's `retryable` flag, never a guess from a local class.
    """
    if isinstance(exc, RemoteError):
        return (
            str(exc.details.get("type_name", "RemoteError")),
            str(exc.details.get("remote_message", exc.message)),
            bool(exc.retryable),
        )
    return type(exc).__name__, exc.message, bool(exc.retryable)


def _error_line(exc: BaseException) -> str:
    if isinstance(exc, TransportError):
        name, message, _ = describe_error(exc)
        return f"{name}: {message}"
    return f"{type(exc).__name__}: {exc}"


def exit_code(exc: TransportError) -> int:
    """69 when nothing answers, 75 for a retryable error, else 1 (see --help)."""
    if isinstance(exc, NothingAnswers):
        return EXIT_UNAVAILABLE
    return EXIT_TEMPFAIL if describe_error(exc)[2] else EXIT_FAILED


def _fail(exc: TransportError, hints: list[str] | None = None) -> NoReturn:
    """Report a failed request on stderr and exit with its code (1, 69 or 75).

    Text: `TypeName: message`, then hint lines (a retryable error says so).
    With --output json: one JSON object, {"error": {...}}.
    """
    name, message, retryable = describe_error(exc)
    endpoint = _session.endpoint
    if isinstance(exc, RemoteError):
        details = {k: v for k, v in exc.details.items() if k not in ("type_name", "traceback")}
    else:
        details = dict(exc.details)
    timed_out = name in ("DeadlineExceeded", "RequestTimeout")
    if timed_out and endpoint and endpoint not in message:
        message = f"{message} (endpoint {endpoint})"
    code = exit_code(exc)
    hints = list(hints or [])
    if retryable:
        hints.append("(retryable: the same request may succeed later)")
    if _session.output == "json":
        error = {
            "type": name,
            "message": message,
            "retryable": retryable,
            "details": details,
            "hints": hints,
            "exit_code": code,
        }
        click.echo(json.dumps({"error": error}, sort_keys=True, default=str), err=True)
    else:
        click.echo(f"{name}: {message}", err=True)
        for hint in hints:
            click.echo(hint, err=True)
    sys.exit(code)


def _fail_local(name: str, message: str, code: int = EXIT_FAILED) -> NoReturn:
    """A local failure (no request was answered): one line, or JSON with --output json."""
    if _session.output == "json":
        error = {"type": name, "message": message, "exit_code": code}
        click.echo(json.dumps({"error": error}, sort_keys=True), err=True)
    else:
        click.echo(f"{name}: {message}", err=True)
    sys.exit(code)


def _run(fn: Any, hint: Any = None) -> Any:
    """`fn()`, or on a TransportError exit as `_fail` says; `hint(exc)` may add hint lines."""
    try:
        return fn()
    except TransportError as exc:
        _fail(exc, hint(exc) if hint is not None else None)


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}? " if close else ""


def _call_hints(client: RpcClient, target: str, method: str, exc: TransportError) -> list[str]:
    """Close names for a mistyped method or target, asked of the service (best effort)."""
    name = describe_error(exc)[0]
    try:
        if name == "MethodNotAllowed":
            described = client.call(target, "describe", {}, timeout=5)
            methods = sorted(m["name"] for m in described.get("methods", []))
            return [
                f"{_suggest(method, methods)}{target} has: {', '.join(methods)}"
                f" (`actorsctl call {target} describe` says more)"
            ]
        if name == "NotFound":
            managers = sorted(client.ping(timeout=5).get("managers", []))
            backends = sorted({m.partition("@")[2] for m in managers if "@" in m})
            return [
                f"{_suggest(target, managers + backends)}targets here: "
                f"{', '.join(managers) or 'none'} (or just the backend name)"
            ]
    except (TransportError, AttributeError, KeyError, TypeError):
        pass
    return []


_ARG_HELP = "argument: name=text (a string) or name:=json (a JSON value); repeat"

_arg_options = [
    click.option("--arg", "pairs", multiple=True, help=_ARG_HELP),
    click.option("--json", "raw_json", help="arguments as a JSON object"),
    click.option(
        "--rpc-version",
        default=None,
        help="the RPC API version the call is written for (MAJOR.MINOR, e.g. 1.0); "
        "refused if the service cannot serve it",
    ),
    click.option(
        "--key",
        default=None,
        help="idempotency key: a retry with the same key gets the first outcome "
        "instead of running again",
    ),
]


def _with_args(fn: Any) -> Any:
    for option in reversed(_arg_options):
        fn = option(fn)
    return fn


_json_argument = click.argument("positional_json", metavar="[ARGS]", required=False)


@cli.command()
@click.argument("target")
@click.argument("method")
@_json_argument
@_with_args
@click.option(
    "--topic",
    default=None,
    help="find TARGET (host@backend, or 'any') among the up services of this topic "
    "in the registry instead of using --endpoint",
)
@click.pass_obj
def call(
    ctx: Context,
    target: str,
    method: str,
    positional_json: str | None,
    pairs: tuple[str, ...],
    raw_json: str | None,
    rpc_version: str | None,
    key: str | None,
    topic: str | None,
) -> None:
    """Call METHOD on TARGET (host@backend or backend) and print the result.

    ARGS, if given, is a JSON object of arguments, like --json; --arg pairs
    are added to it. `actorsctl call TARGET describe` lists TARGET's methods.

    \b
    actorsctl call local create_share --arg share_id=projects --arg size_gb:=10
    """
    args = _parse_args(pairs, raw_json, positional_json)
    if topic is not None:
        _emit(
            ctx,
            _by_topic(
                ctx,
                topic,
                lambda tc: tc.call(method, args, target=_any(target), version=rpc_version, key=key),
            ),
        )
        return
    with ctx.client() as client:
        result = _run(
            lambda: client.call(target, method, args, version=rpc_version, key=key),
            lambda exc: _call_hints(client, target, method, exc),
        )
    if method == "describe" and ctx.output != "json" and isinstance(result, dict):
        click.echo(render_describe(result))
        return
    _emit(ctx, result)


def render_describe(described: dict[str, Any]) -> str:
    """A manager's methods, one a line: name(param: type = default, ...) and its summary."""
    lines = [f"{described.get('name')}  (RPC API {described.get('rpc_version')})"]
    for method in described.get("methods", []):
        params = []
        for p in method.get("parameters", method.get("params", [])):
            if not isinstance(p, dict):  # an older service: names only
                params.append(str(p))
                continue
            text = f"{p['name']}: {p.get('type', 'Any')}"
            if not p.get("required", True):
                text += f" = {p.get('default')}"
            params.append(text)
        flags = [f for f in ("journal", "idempotent") if method.get(f)]
        lines.append(
            f"  {method['name']}({', '.join(params)})"
            + (f"  [{', '.join(flags)}]" if flags else "")
            + (f"\n      {method['doc']}" if method.get("doc") else "")
        )
    return "\n".join(lines)


@cli.command()
@click.argument("target")
@click.argument("method")
@_json_argument
@_with_args
@click.option(
    "--topic",
    default=None,
    help="send to TARGET (host@backend, or 'any': one service) among the services of this"
    " topic in the registry; with --key, sent again to another if its connection is lost",
)
@click.pass_obj
def cast(
    ctx: Context,
    target: str,
    method: str,
    positional_json: str | None,
    pairs: tuple[str, ...],
    raw_json: str | None,
    rpc_version: str | None,
    key: str | None,
    topic: str | None,
) -> None:
    """Send METHOD to TARGET without waiting for a result (waits for acceptance).

    ARGS as for `call`. For a journaled method it prints the operation's id
    (see `op ID`).
    """
    args = _parse_args(pairs, raw_json, positional_json)
    if topic is not None:
        _emit(
            ctx,
            _by_topic(
                ctx,
                topic,
                lambda tc: tc.cast(method, args, target=_any(target), version=rpc_version, key=key),
            ),
        )
        return
    with ctx.client() as client:
        ack = _run(
            lambda: client.cast(target, method, args, version=rpc_version, key=key),
            lambda exc: _call_hints(client, target, method, exc),
        )
    _emit(ctx, ack)


@cli.command("fanout")
@click.argument("topic")
@click.argument("method")
@_json_argument
@click.option(
    "--to",
    "endpoints",
    multiple=True,
    help="endpoint of a service of the topic (repeat)",
)
@click.option("--arg", "pairs", multiple=True, help=_ARG_HELP)
@click.option("--json", "raw_json", help="arguments as a JSON object")
@click.pass_obj
def fanout_cmd(
    ctx: Context,
    topic: str,
    method: str,
    positional_json: str | None,
    endpoints: tuple[str, ...],
    pairs: tuple[str, ...],
    raw_json: str | None,
) -> None:
    """Cast METHOD to every manager of TOPIC on each service endpoint (ARGS as for `call`)."""
    args = _parse_args(pairs, raw_json, positional_json)
    keys: dict[str, str | None] = {ep: None for ep in endpoints}  # endpoint -> its server key
    if not endpoints:  # the up services of the topic, from the registry, with their keys
        registry = ctx.registry()
        try:
            records = _run(lambda: registry.services(topic=topic))
        finally:
            registry.close()
        keys = {r.endpoint: r.server_key for r in records if r.is_up and r.endpoint}
        if not keys:
            _fail_local("NothingAnswers", f"no service of topic {topic!r} is up", EXIT_UNAVAILABLE)
    outcome: dict[str, BaseException | None] = {}
    for server_key in set(keys.values()):  # one fanout per server key (CURVE) or none
        group = sorted(ep for ep, k in keys.items() if k == server_key)
        if server_key is None:  # no CURVE published: --server-key's, if given
            has_key = ctx.security is not None and ctx.security.server_public_key_file
            security = ctx.security if has_key else None
        elif ctx.security is None:
            for ep in group:
                outcome[ep] = AuthenticationFailed(
                    ep, 0, f"{ep} uses CURVE (its key is in the registry): pass --client-key"
                )
            continue
        else:
            security = ctx.security.for_server(server_key)
        outcome.update(
            fanout(group, topic, method, args, timeout=ctx.timeout, green=False, security=security)
        )
    rows = [
        {
            "endpoint": ep,
            "result": "accepted" if err is None else _error_line(err),
        }
        for ep, err in outcome.items()
    ]
    _emit(ctx, rows)
    errors = [err for err in outcome.values() if err is not None]
    if errors:  # 75 if every failure may pass on a retry, else 1
        retryable = all(isinstance(e, TransportError) and e.retryable for e in errors)
        sys.exit(EXIT_TEMPFAIL if retryable else EXIT_FAILED)


@cli.command()
@click.pass_obj
def status(ctx: Context) -> None:
    """Every actor of the service: state, mailbox depth, restarts, current work and its age."""
    with ctx.client() as client:
        dump = _run(lambda: client.call("$service", "status", {}))
    if ctx.output == "json":
        _emit(ctx, dump)
        return
    rows = [
        {
            "actor": a.get("name"),
            "state": a.get("state"),
            "mailbox": a.get("mailbox", ""),
            "restarts": a.get("restarts", 0),
            "current": a.get("current") or "",
            "age": "" if a.get("current_age") is None else f"{a['current_age']:.1f}s",
        }
        for a in dump["actors"]
    ]
    _emit(ctx, rows)


@cli.command()
@click.argument("endpoint", required=False)
@click.pass_obj
def ping(ctx: Context, endpoint: str | None) -> None:
    """Round trip to a service; prints what it says about itself (its targets, too)."""
    with ctx.client(endpoint) as client:
        info = _run(lambda: client.ping())
    _emit(ctx, info)


@cli.command()
@click.option("--topic", default=None, help="only services of this topic")
@click.pass_obj
def services(ctx: Context, topic: str | None) -> None:
    """Services in the registry: up or down, and the age of the last heartbeat."""
    registry = ctx.registry()
    try:
        records = _run(lambda: registry.services(topic=topic))
    finally:
        registry.close()
    rows = [
        {
            "host": r.host,
            "backend": r.backend,
            "topic": r.topic,
            "status": "up" if r.is_up else "down",
            "state": r.state,
            "disabled": (r.disabled_reason or "yes") if r.disabled else "",
            "heartbeat_age": "never" if r.heartbeat_age is None else f"{r.heartbeat_age:.0f}s",
            "endpoint": r.endpoint or "",
        }
        for r in records
    ]
    _emit(ctx, rows)


def _journal_read(ctx: Context, read: Any) -> Any:
    """Run `read(journal)` against the registry's operation journal."""
    from actors.registry.journal import Journal

    registry = ctx.registry()
    journal = Journal(registry)
    try:
        return _run(lambda: read(journal))
    finally:
        journal.close()
        registry.close()


@cli.command("op")
@click.argument("op_id")
@click.pass_obj
def op(ctx: Context, op_id: str) -> None:
    """One journaled operation: state, arguments, result or error, timestamps."""
    record = _journal_read(ctx, lambda journal: journal.get(op_id))
    if record is None:
        _fail_local("OperationNotFound", f"no operation {op_id!r} in the journal")
    _emit(ctx, record.as_data())


@cli.command("ops")
@click.option("--state", type=click.Choice(OPERATION_STATES), default=None)
@click.option("--target", default=None, help="only this manager (host@backend)")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option(
    "--newest", is_flag=True, help="the newest LIMIT operations (still listed oldest first)"
)
@click.pass_obj
def ops(ctx: Context, state: str | None, target: str | None, limit: int, newest: bool) -> None:
    """Journaled operations, oldest first (the oldest LIMIT, or with --newest the newest)."""
    records = _journal_read(
        ctx,
        lambda journal: journal.list(state=state, target=target, limit=limit, newest=newest),
    )
    if ctx.output == "json":
        _emit(ctx, [r.as_data() for r in records])
        return
    rows = [
        {
            "id": r.id,
            "target": r.target,
            "method": r.method,
            "state": r.state,
            "key": r.idempotency_key or "",
            "created": r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            "took": _took(r),
            "reason": _clip(r.reason or "", 60),
        }
        for r in records
    ]
    _emit(ctx, rows)


def _clip(text: str, width: int) -> str:
    """`text` on one line, at most `width` characters; a cut one ends with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _took(record: OperationRecord) -> str:
    if record.finished_at is None:
        return ""
    return f"{(record.finished_at - record.created_at).total_seconds():.3f}s"


@cli.group()
def service() -> None:
    """Enable or disable a service (host and backend) in the registry."""


def _set_disabled(
    ctx: Context, host: str, backend: str, disabled: bool, reason: str | None
) -> None:
    registry = ctx.registry()
    try:
        records = _run(lambda: registry.set_disabled(host, backend, disabled, reason))
    finally:
        registry.close()
    _emit(ctx, [{"host": r.host, "backend": r.backend, "disabled": r.disabled} for r in records])


@service.command("disable")
@click.argument("host")
@click.argument("backend")
@click.option("--reason", default=None, help="why (shown by `services`; at most 255 characters)")
@click.pass_obj
def service_disable(ctx: Context, host: str, backend: str, reason: str | None) -> None:
    """Mark HOST BACKEND disabled: not up, not a fanout target."""
    if reason is not None and len(reason) > 255:
        raise click.BadParameter(
            f"at most 255 characters, not {len(reason)}", param_hint="--reason"
        )
    _set_disabled(ctx, host, backend, True, reason)


@service.command("enable")
@click.argument("host")
@click.argument("backend")
@click.pass_obj
def service_enable(ctx: Context, host: str, backend: str) -> None:
    """Clear the disabled mark of HOST BACKEND."""
    _set_disabled(ctx, host, backend, False, None)


@cli.group()
def db() -> None:
    """The registry database."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(ctx: Context) -> None:
    """Apply the shipped migrations (the daemon also does this at start): the
    framework's, and those of the applications --config (or the default
    service) hosts."""
    migrations = ctx.migrations()
    registry = ctx.registry()
    try:
        for each in migrations:
            registry.add_migrations(each)
        _run(registry.upgrade)
    finally:
        registry.close()
    click.echo("registry is up to date")


@db.command("backup")
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def db_backup(ctx: Context, destination: Path) -> None:
    """Copy a SQLite registry to DESTINATION, safely while the daemon runs."""
    registry = ctx.registry()
    try:
        written = _run(lambda: registry.backup(destination))
    finally:
        registry.close()
    click.echo(f"registry copied to {written}")


@cli.group()
def keys() -> None:
    """CURVE key management."""


@keys.command("generate")
@click.argument("directory", type=click.Path())
@click.option("--name", default="client", show_default=True, help="key file name")
def keys_generate(directory: str, name: str) -> None:
    """Write NAME.key (public) and NAME.key_secret (secret) into DIRECTORY."""
    public, secret = generate_keypair(directory, name)
    click.echo(f"public key: {public}\nsecret key: {secret}")


@cli.command("check-config")
@click.argument("path", type=click.Path())
def check_config(path: str) -> None:
    """Validate a configuration file: keys, backends, import paths, driver options."""
    from actors.config import load_config
    from actors.errors import ActorsError
    from actors.service_actor import plan_backends

    try:
        config = load_config(path)
        plans = plan_backends(config, file=path)
    except ActorsError as exc:
        _fail_local(type(exc).__name__, str(exc))
    click.echo(
        json.dumps(
            {"host": config.host, "runtime": config.runtime, "backends": [p.name for p in plans]}
        )
    )


def _set_output(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None and isinstance(ctx.obj, Context):
        ctx.obj.output = _session.output = value


def _accept_output_after(group: click.Group) -> None:
    """Give every command `--output/-o` too, so it may follow the command's name."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _accept_output_after(command)
        else:
            command.params.append(
                click.Option(
                    ["--output", "-o"],
                    type=click.Choice(["table", "json"]),
                    default=None,
                    expose_value=False,
                    callback=_set_output,
                    help="table or json (as before the command)",
                )
            )


_accept_output_after(cli)


def main() -> None:
    """Run the CLI; an ordinary mistake is one line and an exit code, never a traceback.

    Remote errors are caught where each command calls; this also covers
    what runs before any call: a malformed endpoint, a bad --config or
    --db, a key file that is missing, a directory that cannot be written.
    """
    try:
        cli.main(prog_name="actorsctl", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        if _session.output == "json":  # once --output json was read, usage errors too
            _fail_local(type(exc).__name__, exc.format_message(), exc.exit_code)
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(EXIT_FAILED)
    except TransportError as exc:
        _fail(exc)
    except (zmq.ZMQError, OSError) as exc:
        _fail_local(type(exc).__name__, str(exc))


if __name__ == "__main__":
    main()
