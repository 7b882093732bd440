"""What every CLI command starts from: the settings of this process's environment, a
connection to Temporal that says plainly when it fails, and links into the Temporal UI."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from temporalio.client import Client

from adapters.temporal import connect
from settings import Settings
from starter.client import temporal_config
from starter.problems import temporal_unreachable

T = TypeVar("T")


def settings() -> Settings:
    return Settings.from_env()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def ui_link(workflow_id: str) -> str:
    current = settings()
    return f"{current.ui_url}/namespaces/{temporal_config(current)['namespace']}/workflows/{workflow_id}"


async def temporal_client() -> Client:
    try:
        return await connect(temporal_config(settings()))
    except RuntimeError as error:  # the SDK's way of saying the connection failed
        raise temporal_unreachable(settings(), str(error)) from None
