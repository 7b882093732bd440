"""Shared fixtures.

Sandbox: one sandbox server per test session, on a free port, backed by
O2C_DATABASE_URL when set (CI: PostgreSQL) or else a temporary SQLite file. Its state
is reset when the session starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sandbox import SandboxControl, SandboxServer


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
