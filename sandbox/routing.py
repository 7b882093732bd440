"""What every stand-in's requests go through, once: a Starlette `Mount` per system whose
gate authenticates and injects faults before routing, and one endpoint wrapper per route
that reads the body (or notices the client hung up), runs the handler the system's way
(idempotency, one unit of work) and holds the answer back for "commit then time out".

Routing sees the path as the client sent it, percent-encoding included (a `%2F` inside
an id stays inside it), without a trailing slash; path parameters are decoded after
matching. A known path with another method is the system's own 404, as before a 405.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.control.faults import Faults
from sandbox.core import ApiError, json_response
from sandbox.store import Store

# Keys this module adds to the ASGI scope.
_DECODED_PATH = "sandbox.decoded_path"
_HOLD_SECONDS = "sandbox.hold_seconds"

# A system's handler; each system calls its handlers its own way (see its runner).
Handler = Callable[..., Any]

# (method, path, handler) of each route of one system.
Routes = Sequence[tuple[str, str, Handler]]

# (store, handler, method, path within the system, request, body, path parameters) -> answer
Runner = Callable[[Store, Handler, str, str, Request, Any, dict[str, str]], Response]


@dataclass(frozen=True)
class System:
    """One stand-in: its routes (method, path, handler), how it authenticates, how it
    answers an injected fault and an unknown URL, and how it runs a handler."""

    name: str
    routes: Routes
    authenticate: Callable[[Request], Response | None]
    fault_response: Callable[[int], Response]
    not_found: Callable[[str], Response]
    run: Runner
    form_encoded: bool = False  # Stripe's bodies are forms, parsed by its runner
    raw_body: bool = False  # SAP's are XML (SOAP) or JSON (OData), parsed by its handlers


def run_in_one_unit_of_work(
    store: Store, handler: Handler, method: str, path: str, request: Request, body: Any, params: dict[str, str]
) -> Response:
    """The runner of systems without idempotency keys: the handler's (status, body[,
    headers]) in one unit of work, or the error it raised."""
    try:
        with store.tx() as tx:
            status, out, *headers = handler(tx, request, body, **params)
        return json_response(status, out, *headers)
    except ApiError as exc:
        return json_response(exc.status, exc.body, exc.headers)


class ExactRoute(Route):
    """A route that matches its own methods only, so another method falls through to the
    system's not-found answer, as the real APIs give it."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        return (Match.NONE, {}) if match is Match.PARTIAL else (match, child)


def _endpoint(system: System, store: Store, handler: Handler) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        params = {name: unquote(value) for name, value in request.path_params.items()}
        path = request.scope["path"][len(request.scope.get("root_path", "")) :]
        request = Request({**request.scope, "path": decoded_path(request.scope)}, request.receive)
        try:
            raw = await request.body()
        except ClientDisconnect:  # the client gave up (its timeout) before sending the body
            return Response(status_code=499)
        if system.form_encoded or system.raw_body:
            body: Any = raw
        else:
            try:
                body = json.loads(raw, parse_float=Decimal) if raw else {}
            except json.JSONDecodeError:
                return json_response(400, {"error": {"code": "InvalidJson", "message": "Malformed JSON body"}})
        response = system.run(store, handler, request.method, path, request, body, params)
        hold = request.scope.get(_HOLD_SECONDS)
        if hold:
            # The write happened and its (idempotent) response is stored; the client
            # waits past its timeout, as when a response is lost on the way back.
            await asyncio.sleep(hold)
        return response

    return endpoint


class _Gate:
    """Authentication and injected faults for every request to one system, known URL or not."""

    def __init__(self, system: System, faults: Faults, app: ASGIApp):
        self.system = system
        self.faults = faults
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        denied = self.system.authenticate(Request(scope, receive))
        if denied is not None:
            await denied(scope, receive, send)
            return
        plan = self.faults.plan(self.system.name, scope["method"], scope["path"])
        if plan.latency_seconds:
            await asyncio.sleep(plan.latency_seconds)
        if plan.reject is not None:
            await self.system.fault_response(plan.reject.status)(scope, receive, send)
            return
        await self.app({**scope, _HOLD_SECONDS: plan.hold_seconds}, receive, send)


def mount(system: System, store: Store, faults: Faults) -> Mount:
    async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
        message = f"Unrecognized request URL ({scope['method']}: {scope['path']})"
        await system.not_found(message)(scope, receive, send)

    routes = [
        ExactRoute(path, _endpoint(system, store, handler), methods=[method]) for method, path, handler in system.routes
    ]
    router = Router(routes, redirect_slashes=False, default=not_found)
    return Mount("/" + system.name, app=_Gate(system, faults, router))


def decoded_path(scope: Scope) -> str:
    """The request's path as Starlette decodes it (what `request.url.path` says)."""
    path: str = scope.get(_DECODED_PATH, scope["path"])
    return path


class RawPathRouting:
    """Middleware: route on the path as sent (see the module's docstring); endpoints see
    the decoded one."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").split("?", 1)[0]
            scope = {**scope, "path": raw.rstrip("/") or "/", _DECODED_PATH: scope["path"]}
        await self.app(scope, receive, send)
