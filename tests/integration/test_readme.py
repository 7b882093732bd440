"""The README's walk-through, run as written: every `$` line of its `console` blocks, in
order, as a process of its own against the dev server, the sandbox and the worker, each
expected to exit with the code its comment names (`# exit 3: ...`; 0 when it names none)."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
from pathlib import Path

import pytest

from adapters.storage.users import SqlIdentities
from canonical.identity import Role

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXIT = re.compile(r"#\s*exit (\d)")
# The walk-through's people, as its `o2c users add` lines add them, and their password.
PASSWORD = "walk-through-password"
PEOPLE = {"carla.controller": Role.CONTROLLER, "fiona.finance": Role.FINANCE, "olga.ops": Role.OPERATOR}


def add_people(database_url: str) -> None:
    """The README adds its people once; the test database outlives runs (and the demo's tests
    add people of the same names), so add those missing and give the others the password."""
    store = SqlIdentities(database_url)
    try:
        known = {u.name: u for u in store.users()}
        for name, role in PEOPLE.items():
            if name not in known:
                store.add_user(name, role, PASSWORD)
            else:
                assert known[name].role == role and known[name].disabled_at is None, known[name]
                store.set_password(name, PASSWORD, actor="test_readme")
    finally:
        store.close()


def walkthrough(readme: str) -> list[tuple[str, int]]:
    """(command, expected exit code) for each `$ o2c` line of the README's console blocks."""
    commands = []
    for block in re.findall(r"```console\n(.*?)```", readme, flags=re.DOTALL):
        for line in block.splitlines():
            if line.startswith("$ "):
                command, _, comment = line[2:].partition("#")
                expected = EXIT.search("#" + comment)
                commands.append((command.strip(), int(expected.group(1)) if expected else 0))
    return commands


def test_the_walkthrough_is_found():
    commands = walkthrough((ROOT / "README.md").read_text())
    assert len(commands) > 20 and all(command.startswith("o2c ") for command, _ in commands)
    assert {code for _, code in commands} == {0, 2, 3}


async def test_the_readme_walkthrough_runs_as_written(dev_server, settings, worker, tmp_path):
    env = {
        **os.environ,
        "O2C_TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
        "O2C_TASK_QUEUE": worker,
        "O2C_SANDBOX_URL": settings.sandbox_url,
        "O2C_DATABASE_URL": settings.database_url,
    }
    # The walk-through's entities: US01 on NetSuite and DE01 on SAP (README, "Running it yourself").
    env["O2C_LEGAL_ENTITIES_FILE"] = str(ROOT / "examples" / "legal-entities.json")
    # The walk-through's identity key and signed-in token, apart from everyone else's.
    env["O2C_IDENTITY_KEY_FILE"] = str(tmp_path / "state" / "identity.key")
    env["O2C_TOKEN_FILE"] = str(tmp_path / "config" / "token")
    add_people(settings.database_url)
    # The examples' paths are relative to the repository; files the walk-through writes land here.
    for name in ("examples",):
        (tmp_path / name).symlink_to(ROOT / name)
    for command, expected in walkthrough((ROOT / "README.md").read_text()):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "starter.cli",
            *shlex.split(command)[1:],
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(ROOT)},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        # `o2c login` reads the password from stdin when stdin is no terminal, as here.
        out, err = await asyncio.wait_for(process.communicate(f"{PASSWORD}\n".encode()), timeout=120)
        assert process.returncode == expected, f"{command}\n--- stdout\n{out.decode()}\n--- stderr\n{err.decode()}"
