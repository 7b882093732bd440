"""The sandbox as one ASGI app, and a server that runs it in a background thread.

Mount points:
  /stripe/...         Stripe (/stripe/v1/...)
  /avatax/...         AvaTax (/avatax/api/v2/...)
  /netsuite/...       NetSuite REST (/netsuite/services/rest/record/v1/...)
  /sap/...            SAP S/4HANA Cloud: journal entry SOAP (/sap/sap/bc/srt/scs_ext/sap/...), OData
                      (/sap/sap/opu/odata/sap/API_OPLACCTGDOCITEMCUBE_SRV/..., .../API_BUSINESS_PARTNER/...)
  /entitlements/...   o2c entitlements (/entitlements/v1/...)
  /notifications/...  o2c notifications (/notifications/v1/...)
  /salesforce/...     Salesforce REST subset, the CRM (/salesforce/services/data/v60.0/...)
  /bank/...           a bank that writes camt.053 and BAI2 statement files (/bank/v1/statements)
  /_sandbox/...       control plane (reset, seed, periods, faults, summary, records)
"""

from __future__ import annotations

import argparse
import os
import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import Receive, Scope, Send

from sandbox import config
from sandbox.avatax.api import AVATAX
from sandbox.bank.api import BANK
from sandbox.control.api import control_mount
from sandbox.control.faults import Faults
from sandbox.core import json_response
from sandbox.netsuite.api import NETSUITE
from sandbox.own_services import ENTITLEMENTS, NOTIFICATIONS
from sandbox.routing import RawPathRouting, mount
from sandbox.salesforce import SALESFORCE
from sandbox.sap.api import SAP
from sandbox.store import Store
from sandbox.stripe.api import STRIPE
from sandbox.webhooks import WebhookDispatcher

SYSTEMS = (STRIPE, AVATAX, NETSUITE, SAP, ENTITLEMENTS, NOTIFICATIONS, SALESFORCE, BANK)


async def _unknown_system(scope: Scope, receive: Receive, send: Send) -> None:
    name = scope["path"].lstrip("/").partition("/")[0]
    await json_response(404, {"error": f"unknown system {name!r}"})(scope, receive, send)


def create_app(database_url: str, *, migrate: bool = True) -> Starlette:
    store = Store(database_url, migrate=migrate)
    store.webhooks = WebhookDispatcher(store)
    faults = Faults()
    routes = [control_mount(store, faults), *(mount(system, store, faults) for system in SYSTEMS)]
    app = Starlette(routes=routes, middleware=[Middleware(RawPathRouting)])
    app.router.redirect_slashes = False
    app.router.default = _unknown_system
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
            self.app,
            log_level=self.log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=1,
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
