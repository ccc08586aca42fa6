"""The ServiceActor's side of the transport: requests in, reply futures out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors.errors import ActorsError, MethodNotAllowed
from actors.runtime import ActorFuture
from transport.dispatcher import Request

if TYPE_CHECKING:
    from actors.service import Service


SERVICE_TARGET = "$service"
"""The target that names the service itself rather than one of its managers."""


class ServiceDispatcher:
    """Routes wire requests to managers; never blocks the transport."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def dispatch(self, request: Request) -> ActorFuture[Any]:
        service = self.service
        assert service.system is not None
        if request.target == SERVICE_TARGET and not request.cast:
            return self._service_call(request)
        if request.cast:
            future = service.system.runtime.future()
            try:
                if request.target == service.config.topic:
                    self._broadcast(request)
                else:
                    self._check_cast(request)
                    service.handle(request.target).tell(
                        request.method, (), request.args, rpc=True, version=request.version
                    )
            except ActorsError as exc:
                future.set_exception(exc)
            else:
                future.set(None)
            return future
        try:
            handle = service.handle(request.target)
        except ActorsError as exc:
            future = service.system.runtime.future()
            future.set_exception(exc)
            return future
        return handle.ask(
            request.method,
            (),
            request.args,
            timeout=request.timeout,
            rpc=True,
            version=request.version,
        )

    def _service_call(self, request: Request) -> ActorFuture[Any]:
        """Calls to the service itself (target "$service"): a read-only status dump."""
        service = self.service
        assert service.system is not None
        future = service.system.runtime.future()
        if request.method == "status":
            future.set({"service": self.info(), "actors": service.status()})
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

    def _broadcast(self, request: Request) -> None:
        """A cast to the service's topic reaches every manager it runs."""
        service = self.service
        assert service.actor is not None
        errors = []
        managers = service.actor.managers()
        for name in managers:
            try:
                service.handle(name).tell(
                    request.method, (), request.args, rpc=True, version=request.version
                )
            except ActorsError as exc:
                errors.append(exc)
        if errors and len(errors) == len(managers):
            raise errors[0]

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
