"""Running the webhook ingress over real HTTP for tests: uvicorn on a free port as a task
of the test's event loop, a fake billing port for charge lookups, signed requests."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import uvicorn
from temporalio.client import Client

from canonical.models import Invoice
from starter.webhooks import create_webhook_app

SECRET = "whsec_o2c_ingress_tests"


@dataclass
class FakeBilling:
    """Only what the ingress asks billing: which invoice a charge paid, and (for a
    dispute's customer) the invoice."""

    charges: dict[str, str] = field(default_factory=dict)
    failure: Exception | None = None
    invoices: dict[str, Invoice] = field(default_factory=dict)

    async def invoice_of_charge(self, charge_id: str) -> str | None:
        if self.failure is not None:
            raise self.failure
        return self.charges.get(charge_id)

    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        if self.failure is not None:
            raise self.failure
        return self.invoices.get(invoice_id)


@dataclass
class Ingress:
    url: str
    http: httpx.AsyncClient
    billing: FakeBilling
    task_queue: str


class RunningServer:
    """uvicorn serving `app` on 127.0.0.1:<free port> as a task of the running loop."""

    def __init__(self, app) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # older uvicorn
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> RunningServer:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        while not self.server.started:
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.should_exit = True
        assert self.task is not None
        await self.task
        self.sock.close()


@asynccontextmanager
async def serve(client: Client, billing: FakeBilling | None = None, **options) -> AsyncIterator[Ingress]:
    billing = billing if billing is not None else FakeBilling()
    task_queue = f"tq-ingress-{uuid.uuid4().hex[:8]}"
    app = create_webhook_app(client, secret=SECRET, task_queue=task_queue, billing=billing, **options)
    async with RunningServer(app) as running, httpx.AsyncClient(base_url=running.url, timeout=30) as http:
        yield Ingress(url=running.url, http=http, billing=billing, task_queue=task_queue)
