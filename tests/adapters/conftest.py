from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from adapters.avatax import AvaTaxTax
from adapters.entitlements import HttpEntitlements
from adapters.netsuite import NetSuiteErp
from adapters.notifications import HttpNotifications
from adapters.stripe import StripeBilling

API_KEY = "sk_test_o2c_adapters"
CUSTOMER = {
    "id": "cus_acme",
    "name": "Acme Corp",
    "email": "ap@acme.test",
    "address": {
        "line1": "1 Market St",
        "city": "San Francisco",
        "region": "CA",
        "postal_code": "94105",
        "country": "US",
    },
    "legal_entity": "US01",
}
SUBSCRIPTION = {
    "id": "sub_acme",
    "contract_id": "C-100",
    "currency": "USD",
    "items": [
        {"product": "prod_seats", "description": "Platform seats", "quantity": 10, "unit_price": "50.00"},
        {
            "product": "prod_support",
            "description": "Premium support",
            "quantity": 1,
            "unit_price": "200.00",
            "discount_percent": "10",
        },
    ],
    "current_period_start": "2025-03-01",
    "current_period_end": "2025-04-01",
    "term_start": "2025-01-01",
    "term_end": "2026-01-01",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """o2c's own database for a store test: a fresh SQLite file, and PostgreSQL as well when
    O2C_DATABASE_URL names one (shared across runs: tests use keys of their own)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'o2c.sqlite'}"
    url = os.environ.get("O2C_DATABASE_URL", "")
    if not url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        pytest.skip("O2C_DATABASE_URL names no PostgreSQL database")
    return url


@pytest.fixture(autouse=True)
def clean_sandbox(sandbox):
    sandbox.reset()
    yield
    sandbox.clear_faults()


@pytest.fixture
def seeded(sandbox):
    return sandbox.seed(customer=CUSTOMER, subscription=SUBSCRIPTION)


@pytest.fixture
async def stripe(sandbox) -> AsyncIterator[StripeBilling]:
    client = StripeBilling(sandbox.stripe_url, API_KEY, timeout=5)
    yield client
    await client.aclose()


@pytest.fixture
async def avatax(sandbox) -> AsyncIterator[AvaTaxTax]:
    client = AvaTaxTax(sandbox.avatax_url, "o2c", "sandbox-license", "US01", timeout=5)
    yield client
    await client.aclose()


@pytest.fixture
async def netsuite(sandbox) -> AsyncIterator[NetSuiteErp]:
    client = NetSuiteErp(sandbox.netsuite_url, "sandbox-token", timeout=5)
    yield client
    await client.aclose()


@pytest.fixture
async def entitlements(sandbox) -> AsyncIterator[HttpEntitlements]:
    client = HttpEntitlements(sandbox.entitlements_url, timeout=5)
    yield client
    await client.aclose()


@pytest.fixture
async def notifications(sandbox) -> AsyncIterator[HttpNotifications]:
    client = HttpNotifications(sandbox.notifications_url, timeout=5)
    yield client
    await client.aclose()
