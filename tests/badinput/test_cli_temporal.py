"""`o2c status`, `approve` and `resolve` at a process that cannot answer, each command in its
own process: Temporal down (one line, exit 1, no traceback), and Temporal up with no such
process, a finished one, or a running one that no worker serves. When Temporal answered, the
CLI says what it answered, and never that `o2c dev` may not be running."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from starter.binaries import dev_server_binary
from workflows.kit.status import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[2]
ANSWER_SECONDS = "2"

COMMANDS = {
    "status": ["status"],
    "approve": ["approve", "{id}"],
    "reject": ["reject", "{id}", "--comment", "no"],
    "resolve": ["resolve", "{id}", "retry"],
}
PASSWORD = "a long enough password"
# The signed-in controller every answer is given as: its key, token and (without a shared
# PostgreSQL) its database, in a folder of the module's own.
IDENTITY: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def signed_in(tmp_path_factory):
    home = tmp_path_factory.mktemp("doors-identity")
    IDENTITY.update(
        {
            "O2C_STATE_DIR": str(home),
            "O2C_IDENTITY_KEY_FILE": str(home / "identity.key"),
            "O2C_TOKEN_FILE": str(home / "token"),
        }
    )
    name = f"carla.{uuid.uuid4().hex[:6]}"
    for args in (
        ["users", "add", name, "--role", "controller", "--password-stdin"],
        ["login", name, "--password-stdin"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "starter.cli", *args],
            cwd=ROOT,
            env={**os.environ, **IDENTITY},
            input=PASSWORD + "\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    yield name
    IDENTITY.clear()


def command(name: str, workflow_id: str) -> list[str]:
    args = COMMANDS[name]
    return [a.format(id=workflow_id) for a in args] if "{id}" in args else [*args, workflow_id]


@workflow.defn(name="DoorsQuick")
class Quick:
    """A process that is over as soon as it starts."""

    @workflow.run
    async def run(self) -> str:
        return "done"


async def o2c(address: str, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "starter.cli",
        *args,
        cwd=ROOT,
        env={
            **os.environ,
            **IDENTITY,
            "O2C_TEMPORAL_ADDRESS": address,
            "O2C_WORKER_ANSWER_SECONDS": ANSWER_SECONDS,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode is not None
    return process.returncode, err.decode()


def one_line(err: str) -> str:
    assert err.startswith("o2c: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
async def temporal():
    environment = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=dev_server_binary(),
        search_attributes=SEARCH_ATTRIBUTES,
        ui=False,
    )
    yield environment
    await environment.shutdown()


@pytest.fixture(scope="module")
async def processes(temporal):
    """A finished process and a running one whose task queue no worker serves."""
    client: Client = temporal.client
    suffix = uuid.uuid4().hex[:6]
    finished, orphan = f"doors-finished-{suffix}", f"doors-orphan-{suffix}"
    queue = f"doors-{suffix}"
    async with Worker(client, task_queue=queue, workflows=[Quick], workflow_runner=UnsandboxedWorkflowRunner()):
        await client.execute_workflow(Quick.run, id=finished, task_queue=queue)
    await client.start_workflow("DoorsQuick", id=orphan, task_queue=f"{queue}-nobody")
    yield {"finished": finished, "orphan": orphan, "queue": queue}
    await client.get_workflow_handle(orphan).terminate(reason="test over")


def address_of(temporal) -> str:
    return temporal.client.service_client.config.target_host


@pytest.mark.parametrize("name", sorted(COMMANDS))
async def test_an_unknown_process_is_said_to_be_unknown(temporal, name):
    code, err = await o2c(address_of(temporal), *command(name, f"doors-nothing-{uuid.uuid4().hex[:6]}"))
    assert code == 2 and "no such process" in one_line(err) and "o2c dev" not in err


@pytest.mark.parametrize("name", ["approve", "reject", "resolve"])
async def test_answering_a_finished_process_says_it_has_finished(temporal, processes, name):
    code, err = await o2c(address_of(temporal), *command(name, processes["finished"]))
    assert code == 2 and "already finished" in one_line(err) and "o2c dev" not in err


async def test_the_status_of_a_finished_process_with_no_worker_says_both(temporal, processes):
    code, err = await o2c(address_of(temporal), "status", processes["finished"])
    assert code == 1
    said = one_line(err)
    assert f"{processes['finished']} has finished (completed)" in said
    assert f"none serves task queue {processes['queue']}" in said


@pytest.mark.parametrize("name", sorted(COMMANDS))
async def test_a_running_process_no_worker_serves_is_said_so_in_bounded_time(temporal, processes, name):
    started = asyncio.get_running_loop().time()
    code, err = await o2c(address_of(temporal), *command(name, processes["orphan"]))
    assert code == 1
    said = one_line(err)
    assert f"{processes['orphan']} is running, but no worker answered for it within 2 s" in said
    assert "is `o2c worker` (or `o2c dev`) running?" in said and "Temporal at" not in said
    if name != "status":
        assert "The answer is not confirmed" in said
    assert asyncio.get_running_loop().time() - started < 45


class Silent:
    """A port that accepts connections and drops them: a Temporal that does not answer."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(self.sock)
            conn.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("name", sorted(COMMANDS))
async def test_a_temporal_that_is_down_is_one_line_exit_1(name):
    port = closed_port()
    code, err = await o2c(f"127.0.0.1:{port}", *command(name, "amendment-x"))
    assert code == 1
    assert f"Temporal at 127.0.0.1:{port} refused the connection; is `o2c dev` running?" in one_line(err)


async def test_a_temporal_that_drops_the_connection_is_one_line_exit_1():
    silent = Silent()
    serving = asyncio.create_task(silent.serve())
    try:
        port = silent.sock.getsockname()[1]
        for name in sorted(COMMANDS):
            code, err = await o2c(f"127.0.0.1:{port}", *command(name, "amendment-x"))
            assert code == 1
            assert f"Temporal at 127.0.0.1:{port} did not answer" in one_line(err), err
    finally:
        serving.cancel()
        silent.sock.close()
