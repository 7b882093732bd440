"""The sandbox as one ASGI app, and a server that runs it in a background thread.

Mount points:
  /stripe/...         Stripe (/stripe/v1/...)
  /avatax/...         AvaTax (/avatax/api/v2/...)
  /netsuite/...       NetSuite REST (/netsuite/services/rest/record/v1/...)
  /entitlements/...   o2c entitlements (/entitlements/v1/...)
  /notifications/...  o2c notifications (/notifications/v1/...)
  /salesforce/...     Salesforce REST subset, the CRM (/salesforce/services/data/v60.0/...)
  /_sandbox/...       control plane (reset, seed, periods, faults, summary, records)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import avatax_api, config, control, netsuite_api, own_api, salesforce_api, stripe_api
from sandbox.core import Faults, json_response
from sandbox.store import Store
from sandbox.webhooks import WebhookDispatcher


@dataclass
class System:
    name: str
    routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]]
    authenticate: Callable[[Request], Response | None]
    fault_response: Callable[[int], Response]
    run: Callable[..., Response]
    form_encoded: bool = False


def _compile(routes: list[tuple[str, str, Any]]) -> list[tuple[str, re.Pattern[str], Any]]:
    return [(method, re.compile(pattern + r"/?$"), handler) for method, pattern, handler in routes]


SYSTEM_TABLE = {
    "stripe": System(
        "stripe",
        _compile(stripe_api.ROUTES),
        stripe_api.authenticate,
        stripe_api.fault_response,
        stripe_api.run,
        form_encoded=True,
    ),
    "avatax": System(
        "avatax", _compile(avatax_api.ROUTES), avatax_api.authenticate, avatax_api.fault_response, avatax_api.run
    ),
    "netsuite": System(
        "netsuite",
        _compile(netsuite_api.ROUTES),
        netsuite_api.authenticate,
        netsuite_api.fault_response,
        netsuite_api.run,
    ),
    "entitlements": System(
        "entitlements",
        _compile(own_api.ENTITLEMENT_ROUTES),
        own_api.authenticate,
        own_api.fault_response,
        own_api.run_entitlements,
    ),
    "notifications": System(
        "notifications",
        _compile(own_api.NOTIFICATION_ROUTES),
        own_api.authenticate,
        own_api.fault_response,
        own_api.run_notifications,
    ),
    "salesforce": System(
        "salesforce",
        _compile(salesforce_api.ROUTES),
        salesforce_api.authenticate,
        salesforce_api.fault_response,
        salesforce_api.run,
    ),
}


def _not_found(system: str, method: str, path: str) -> Response:
    message = f"Unrecognized request URL ({method}: {path})"
    if system == "stripe":
        err = stripe_api.invalid(message, code="resource_missing")
        return json_response(404, err.body, err.headers)
    if system == "netsuite":
        return json_response(404, netsuite_api.error(404, "INVALID_URL", message).body)
    if system == "avatax":
        return json_response(404, avatax_api.error(404, "EntityNotFoundError", message).body)
    if system == "salesforce":
        return json_response(404, salesforce_api.error(404, "NOT_FOUND", message).body)
    return json_response(404, {"error": {"code": "not_found", "message": message}})


def create_app(database_url: str, *, migrate: bool = True) -> Starlette:
    store = Store(database_url, migrate=migrate)
    store.webhooks = WebhookDispatcher(store)
    faults = Faults()

    async def dispatch(request: Request) -> Response:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        if path.startswith("/_sandbox"):
            return await control.handle(request, store, faults)
        name, _, rest = path.lstrip("/").partition("/")
        system = SYSTEM_TABLE.get(name)
        if system is None:
            return json_response(404, {"error": f"unknown system {name!r}"})
        sub_path = "/" + rest
        method = request.method
        denied = system.authenticate(request)
        if denied is not None:
            return denied
        plan = faults.plan(name, method, path)
        if plan.latency_seconds:
            await asyncio.sleep(plan.latency_seconds)
        if plan.reject is not None:
            return system.fault_response(plan.reject.status)
        for route_method, pattern, handler in system.routes:  # noqa: B007 - the matched handler runs after the loop
            match = pattern.match(sub_path)
            if match and route_method == method:
                break
        else:
            return _not_found(name, method, path)
        groups = {k: unquote(v) for k, v in match.groupdict().items()}
        try:
            raw = await request.body()
        except ClientDisconnect:  # the client gave up (its timeout) before sending the body
            return Response(status_code=499)
        if system.form_encoded:
            body: Any = raw
        else:
            try:
                body = json.loads(raw, parse_float=Decimal) if raw else {}
            except json.JSONDecodeError:
                return json_response(400, {"error": {"code": "InvalidJson", "message": "Malformed JSON body"}})
        response = system.run(store, handler, method, sub_path, request, body, groups)
        if plan.hold_seconds:
            # The write happened and its (idempotent) response is stored; the client
            # waits past its timeout, as when a response is lost on the way back.
            await asyncio.sleep(plan.hold_seconds)
        return response

    app = Starlette(routes=[Route("/{path:path}", dispatch, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])])
    app.state.store = store
    app.state.faults = faults
    return app


class SandboxServer:
    """Runs the sandbox with uvicorn in a background thread.

    with SandboxServer(url) as sandbox:
        httpx.get(sandbox.url + "/_sandbox/summary")
    """

    def __init__(
        self, database_url: str | None = None, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning"
    ):
        self.database_url = database_url or config.database_url()
        self.host = host
        self.port = port
        self.log_level = log_level
        self.app: Starlette | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> SandboxServer:
        self.app = create_app(self.database_url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._socket = sock
        config = uvicorn.Config(
            self.app, log_level=self.log_level, access_log=False, lifespan="on", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="o2c-sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the sandbox server failed to start")
            if time.monotonic() > deadline:
                raise TimeoutError("the sandbox server did not start in time")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        if self.app is not None:
            self.app.state.store.webhooks.close()
            self.app.state.store.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(database_url: str | None = None, host: str = "127.0.0.1", port: int = 8700, log_level: str = "info") -> None:
    """Run the sandbox in the foreground."""
    uvicorn.run(create_app(database_url or config.database_url()), host=host, port=port, log_level=log_level)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="o2c-sandbox",
        description="Run the o2c sandbox (Stripe, AvaTax, NetSuite, entitlements, notifications stand-ins).",
    )
    parser.add_argument("--host", default=os.environ.get("O2C_SANDBOX_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("O2C_SANDBOX_PORT", "8700")))
    parser.add_argument(
        "--database-url", default=None, help="defaults to SANDBOX_DATABASE_URL, O2C_DATABASE_URL or .o2c/o2c.sqlite"
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    serve(args.database_url, args.host, args.port, args.log_level)


if __name__ == "__main__":
    main()
