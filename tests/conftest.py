"""Shared fixtures.

Sandbox: one sandbox server per test session, on a free port, backed by
O2C_DATABASE_URL when set (CI: PostgreSQL) or else a temporary SQLite file. Its state
is reset when the session starts.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import SandboxControl, SandboxServer

# The tests never read or write a person's identity key or signed-in token: both point into a
# directory of the session's own. Nothing creates the key there unless a test asks for it, so
# processes the tests start decide by name unless a test gives them an identity key.
_IDENTITY_HOME = Path(tempfile.mkdtemp(prefix="o2c-identity-"))
os.environ.setdefault("O2C_IDENTITY_KEY_FILE", str(_IDENTITY_HOME / "never" / "identity.key"))
os.environ.setdefault("O2C_TOKEN_FILE", str(_IDENTITY_HOME / "token"))


class SandboxHandle(SandboxControl):
    """The running sandbox: `.url`, the systems' base URLs and the control plane."""

    def __init__(self, server: SandboxServer):
        super().__init__(server.url)
        self.server = server
        self.database_url = server.database_url


@pytest.fixture(scope="session")
def sandbox_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("O2C_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('sandbox') / 'sandbox.sqlite'}"


@pytest.fixture(scope="session")
def sandbox(sandbox_database_url: str) -> Iterator[SandboxHandle]:
    with SandboxServer(sandbox_database_url) as server:
        handle = SandboxHandle(server)
        handle.reset()
        try:
            yield handle
        finally:
            handle.close()
