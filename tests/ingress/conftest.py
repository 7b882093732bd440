"""The webhook ingress over real HTTP: uvicorn on a free port in the test's event loop,
a Temporal time-skipping server behind it, and no worker (the tests only look at which
workflows exist and what their histories hold; each test terminates what it started)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from adapters.temporal import register_search_attributes
from starter.binaries import test_server_binary
from tests.ingress.ingress_kit import Ingress, serve
from workflows.kit.status import SEARCH_ATTRIBUTES


@pytest.fixture(scope="session")
async def ingress_env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=test_server_binary()
    )
    await register_search_attributes(environment.client, "default", SEARCH_ATTRIBUTES)
    yield environment
    await environment.shutdown()


@pytest.fixture
async def ingress(ingress_env: WorkflowEnvironment) -> AsyncIterator[Ingress]:
    async with serve(ingress_env.client, max_body_bytes=16 * 1024) as running:
        yield running
