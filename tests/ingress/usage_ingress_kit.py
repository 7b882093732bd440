"""The usage ingress over real HTTP for tests: uvicorn on a free port in the test's event
loop, on a fresh SQLite file or the shared PostgreSQL database, with a key and a customer
of the test's own."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from adapters.storage.usage import UsageLedger
from starter.usage_ingress import create_usage_app
from tests.adapters.usage_kit import customer, seeded_ledger
from tests.ingress.ingress_kit import RunningServer


@dataclass
class UsageIngress:
    http: httpx.AsyncClient
    ledger: UsageLedger
    key: str
    customer: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}


def database_urls(tmp_path: Path) -> str:
    url = os.environ.get("O2C_DATABASE_URL", "")
    return url if url.startswith("postgres") else f"sqlite:///{tmp_path / 'o2c.sqlite'}"


@asynccontextmanager
async def serve_usage(url: str, **options) -> AsyncIterator[UsageIngress]:
    acme = customer()
    ledger = await seeded_ledger(url, acme, max_wait_seconds=0.01)
    key = await ledger.create_key(f"platform-{acme.customer}")
    app = create_usage_app(ledger, **options)
    try:
        async with RunningServer(app) as running, httpx.AsyncClient(base_url=running.url, timeout=30) as http:
            yield UsageIngress(http=http, ledger=ledger, key=key, customer=acme.customer)
    finally:
        await ledger.aclose()
