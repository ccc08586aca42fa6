"""The ServiceActor's side of the transport: requests in, reply futures out."""

from __future__ import annotations

import functools
import json
import math
import threading
from typing import Any, Protocol

from actors._operations import Operations
from actors.config import ServiceConfig
from actors.errors import ActorsError, DeadlineExceeded, InvalidArguments, MethodNotAllowed
from actors.registry.journal import OperationNotFound
from actors.registry.models import OPERATION_STATES
from actors.runtime import ActorFuture, offload_status
from actors.service_actor import ServiceActor
from actors.system import ActorHandle, ActorSystem
from transport.dispatcher import Request
from transport.protocol import PROTOCOL_VERSION

SERVICE_TARGET = "$service"
"""The target that names the service itself rather than one of its managers."""


class DispatchedService(Protocol):
    """What the dispatcher uses of the `Service` it serves.

    A Protocol rather than `actors.service.Service`, which imports this module:
    the dependency goes one way only.
    """

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> ServiceConfig: ...

    @property
    def system(self) -> ActorSystem | None: ...

    @property
    def actor(self) -> ServiceActor | None: ...

    @property
    def operations(self) -> Operations | None: ...

    def route(self, target: str) -> str: ...

    def handle(self, target: str) -> ActorHandle: ...

    def submit_journaled(
        self,
        handle: ActorHandle,
        method: str,
        args: dict[str, Any],
        *,
        version: str | None,
        key: str | None,
        scope: str | None = None,
    ) -> tuple[ActorFuture[Any], ActorFuture[Any]] | None: ...

    def status(self) -> list[dict[str, Any]]: ...


class ServiceDispatcher:
    """Routes wire requests to managers; never blocks the transport."""

    def __init__(self, service: DispatchedService) -> None:
        self.service = service

    def dispatch(self, request: Request) -> ActorFuture[Any]:
        service = self.service
        system = service.system
        assert system is not None
        target, cast = request.target, request.cast
        if cast:
            return self._cast(request)
        if target == SERVICE_TARGET:
            return self._service_call(request)
        if service.operations is not None:
            journaled = self._journaled(request)
            if journaled is not None:
                return self._as_asked(request, journaled, deadline=False)
        try:
            handle = service.handle(target)
        except ActorsError as exc:
            future = system.runtime.future()
            future.set_exception(exc)
            return future
        return self._as_asked(
            request,
            handle._ask(
                request.method,
                (),
                request.args,
                request.timeout,
                None,
                True,
                request.version,
                False,
            ),
            deadline=True,
        )

    def _as_asked(
        self, request: Request, outcome: ActorFuture[Any], *, deadline: bool
    ) -> ActorFuture[Any]:
        """A call's outcome told in the caller's terms.

        A deadline that ran out in a step the manager started (a driver call,
        a continuation) names that step's actor and method: the caller hears
        its own target (resolved) and method instead. The timeout is the
        call's own once its deadline has passed (only when the call has one:
        `deadline`, false for a journaled method), else that of the step's
        own limit (docs/protocol.md, §5 and §9).
        """
        system = self.service.system
        assert system is not None
        clock = system.runtime.clock
        due = clock.monotonic() + request.timeout if deadline else math.inf
        answer: ActorFuture[Any] = system.runtime.future()

        def settle(done: ActorFuture[Any]) -> None:
            error = done.exception()
            if isinstance(error, DeadlineExceeded):
                try:
                    name = self.service.route(request.target)
                except Exception:  # the service is stopping: tell the error as it is
                    name = request.target
                if (error.details.get("target"), error.details.get("method")) != (
                    name,
                    request.method,
                ):
                    ran_out = clock.monotonic() >= due
                    timeout = request.timeout if ran_out else error.details.get("timeout", 0.0)
                    relabelled = DeadlineExceeded(name, request.method, timeout)
                    relabelled.__cause__ = error
                    answer.try_set_exception(relabelled)
                    return
            done.transfer_to(answer)

        outcome.add_done_callback(settle)
        return answer

    def _cast(self, request: Request) -> ActorFuture[Any]:
        """A cast: accepted (or refused) at once; a journaled one once committed."""
        service = self.service
        assert service.system is not None
        if request.target != service.config.topic:
            journaled = self._journaled(request)
            if journaled is not None:
                return journaled
        future = service.system.runtime.future()
        try:
            if request.target == service.config.topic:
                return self._broadcast(request)
            self._check_cast(request)
            service.handle(request.target).tell(
                request.method, (), request.args, rpc=True, version=request.version
            )
        except ActorsError as exc:
            future.set_exception(exc)
        else:
            future.set(None)
        return future

    def _journaled(self, request: Request) -> ActorFuture[Any] | None:
        """Submit a request for a journaled method; None if it is not one."""
        service = self.service
        if service.operations is None:
            return None
        try:
            handle = service.handle(request.target)
        except ActorsError:
            return None  # the plain path reports the unknown target
        submitted = service.submit_journaled(
            handle,
            request.method,
            request.args,
            version=request.version,
            key=request.key,
            scope=request.scope,
        )
        if submitted is None:
            return None
        accepted, outcome = submitted
        return accepted if request.cast else outcome

    def _service_call(self, request: Request) -> ActorFuture[Any]:
        """Calls to the service itself (target "$service"): status and the journal."""
        service = self.service
        assert service.system is not None
        runtime = service.system.runtime
        future = runtime.future()
        operations = service.operations
        if request.method == "status":
            future.set(
                {
                    "service": {"protocol": PROTOCOL_VERSION, **self.info()},  # as ping's info
                    "actors": service.status(),
                    "offload": offload_status(),
                }
            )
        elif request.method in ("operation", "operations") and operations is not None:
            # Reads for clients: refused at once (Overloaded) when the lane is full.
            try:
                if request.method == "operation":
                    return runtime.offload(_operation, operations, request.args, lane="client")
                return runtime.offload(_operations, operations, request.args, lane="client")
            except Exception as exc:
                future.set_exception(exc)
        else:
            future.set_exception(MethodNotAllowed(SERVICE_TARGET, request.method))
        return future

    def _check_cast(self, request: Request) -> None:
        """Refuse a cast that could never run, before acknowledging it."""
        service = self.service
        assert service.actor is not None
        name = service.route(request.target)
        plan = next(p for p in service.actor.plans if p.name == name)
        plan.manager_class.check_request(name, request.method, request.version)

    def _broadcast(self, request: Request) -> ActorFuture[Any]:
        """A cast to the service's topic reaches every manager it runs.

        Managers for which the method is journaled get one operation each; the
        ack waits for those commits and lists them: {"operations": {name: id}}.
        """
        service = self.service
        assert service.actor is not None and service.system is not None
        errors: list[BaseException] = []
        managers = service.actor.managers()
        journaled: dict[str, ActorFuture[Any]] = {}
        for name in managers:
            try:
                handle = service.handle(name)
                submitted = service.submit_journaled(
                    handle, request.method, request.args, version=request.version, key=request.key
                )
                if submitted is not None:
                    journaled[name] = submitted[0]
                else:
                    handle.tell(request.method, (), request.args, rpc=True, version=request.version)
            except ActorsError as exc:
                errors.append(exc)
        ack = service.system.runtime.future()
        remaining = len(journaled)
        ids: dict[str, str] = {}
        lock = threading.Lock()  # completions may come from the journal's thread

        def settle() -> None:
            if errors and len(errors) == len(managers):
                ack.try_set_exception(errors[0])
            else:
                ack.try_set({"operations": ids} if ids else None)

        def one_done(name: str, done: ActorFuture[Any]) -> None:
            nonlocal remaining
            error = done.exception()
            with lock:
                remaining -= 1
                if error is not None:
                    errors.append(error)
                else:
                    ids[name] = done.value()["operation"]
                last = remaining == 0
            if last:
                settle()

        if not journaled:
            settle()
        for name, accepted in journaled.items():
            accepted.add_done_callback(functools.partial(one_done, name))
        return ack

    def info(self) -> dict[str, Any]:
        service = self.service
        config = service.config
        return {
            "service": service.name,
            "host": config.host,
            "binary": config.binary,
            "topic": config.topic,
            "runtime": config.runtime if service.system is None else service.system.runtime.name,
            "managers": service.actor.managers() if service.actor else [],
        }


def _operation(operations: Operations, args: dict[str, Any]) -> dict[str, Any]:
    """`$service.operation(id)`: one journaled operation (off the actors: a database read)."""
    _only(args, "operation", {"id"})
    op_id = args.get("id")
    if not isinstance(op_id, str) or len(op_id) > 255:
        raise InvalidArguments(
            SERVICE_TARGET, "operation", "'id' must be a string of at most 255 characters"
        )
    record = operations.journal.get(op_id)
    if record is None:
        raise OperationNotFound(op_id)
    return record.as_data()


def _operations(operations: Operations, args: dict[str, Any]) -> dict[str, Any]:
    """`$service.operations(state?, target?, limit?)`: journaled operations, oldest first."""
    _only(args, "operations", {"state", "target", "limit", "newest"})
    state, target, limit = args.get("state"), args.get("target"), args.get("limit", 100)
    newest = args.get("newest", False)
    if type(newest) is not bool:
        raise InvalidArguments(SERVICE_TARGET, "operations", "'newest' must be true or false")
    if state is not None and state not in OPERATION_STATES:
        raise InvalidArguments(
            SERVICE_TARGET, "operations", f"'state' must be one of {list(OPERATION_STATES)}"
        )
    if target is not None and not isinstance(target, str):
        raise InvalidArguments(SERVICE_TARGET, "operations", "'target' must be a string")
    if type(limit) is not int or not 1 <= limit <= 10_000:
        raise InvalidArguments(SERVICE_TARGET, "operations", "'limit' must be 1..10000")
    records = operations.journal.list(state=state, target=target, limit=limit, newest=newest)
    if newest:  # when the size cap cuts the list, keep the newest ones
        records.reverse()
    listed: list[dict[str, Any]] = []
    size = 0
    for record in records:
        data = _brief(record.as_data())
        size += len(json.dumps(data, default=str))
        if size > LISTING_BYTES and listed:
            break
        listed.append(data)
    else:
        return {"operations": listed[::-1] if newest else listed, "truncated": False}
    return {"operations": listed[::-1] if newest else listed, "truncated": True}


LISTING_BYTES = 256 * 1024
"""About how much one `$service.operations` reply may carry (well under the
message limit): operations past it are left out and `truncated` is true."""
FIELD_BYTES = 4 * 1024
"""An operation's args, result or error larger than this are left out of a
listing (`$service.operation(id)` shows them whole)."""


def _brief(data: dict[str, Any]) -> dict[str, Any]:
    """An operation for a listing: large args, result or error replaced by their size."""
    for field in ("args", "result", "error"):
        text = json.dumps(data.get(field), default=str)
        if len(text) > FIELD_BYTES:
            data[field] = {"omitted_bytes": len(text)}
    reason = data.get("reason")
    if isinstance(reason, str) and len(reason) > FIELD_BYTES:  # rows written before the cap
        data["reason"] = reason[:FIELD_BYTES] + "..."
    return data


def _only(args: dict[str, Any], method: str, known: set[str]) -> None:
    """Unknown arguments are refused, as for any manager method."""
    unknown = sorted(str(name)[:64] for name in set(args) - known)
    if unknown:
        raise InvalidArguments(
            SERVICE_TARGET, method, f"unexpected argument(s): {', '.join(unknown[:10])}"
        )
