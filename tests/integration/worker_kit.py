"""A worker of a test's own, for the legal entities of the test's own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.client import Client

from canonical.models import LegalEntity
from settings import Settings
from worker import build_ports, running_worker


@asynccontextmanager
async def worker_for(client: Client, settings: Settings, entities: list[LegalEntity]) -> AsyncIterator[Settings]:
    """A worker of its own, on a task queue of its own, that books for these legal entities
    besides the configured ones: the worker routes every ERP call by the entity's ledger, so
    a test's entity of its own must be one the worker knows."""
    own = settings.model_copy(
        update={
            "legal_entities_in_file": [*settings.legal_entities, *entities],
            "task_queue": f"{settings.task_queue}-{uuid.uuid4().hex[:6]}",
        }
    )
    async with running_worker(client, own, build_ports(own)):
        yield own
