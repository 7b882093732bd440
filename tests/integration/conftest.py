"""The real thing: Temporal dev server, the o2c worker with its HTTP adapters, the sandbox."""

from __future__ import annotations

import socket
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import TypeAdapter
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from adapters.stripe import StripeBilling
from canonical.models import AmendedLine, AmendmentRequest, LegalEntity
from sandbox import SandboxControl
from settings import Settings
from starter.binaries import dev_server_binary
from starter.stack import webhook_ingress
from worker import build_ports, running_worker
from workflows.kit.status import SEARCH_ATTRIBUTES

pytestmark = pytest.mark.integration

PERIOD_START, PERIOD_END = date(2026, 11, 1), date(2026, 12, 1)


@pytest.fixture(scope="session")
async def dev_server():
    environment = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=dev_server_binary(),
        search_attributes=SEARCH_ATTRIBUTES,
        ui=False,
    )
    yield environment
    await environment.shutdown()


EXAMPLE_ENTITIES = TypeAdapter(list[LegalEntity]).validate_json(
    (Path(__file__).resolve().parents[2] / "examples" / "legal-entities.json").read_text()
)


@pytest.fixture(scope="session")
def settings(sandbox) -> Settings:
    # A short HTTP timeout so that the sandbox's commit-then-timeout fault loses the response.
    return (
        Settings.from_env()
        .on_sandbox(sandbox.url)
        .model_copy(
            update={
                "task_queue": f"o2c-it-{uuid.uuid4().hex[:6]}",
                "http_timeout_seconds": 1.5,
                "database_url": sandbox.database_url,
                # One entity on each ERP, as the README and the demo run: US01 on NetSuite,
                # DE01 on SAP S/4HANA.
                "legal_entities_in_file": EXAMPLE_ENTITIES,
            }
        )
    )


@pytest.fixture(scope="session")
async def worker(dev_server, settings):
    async with running_worker(dev_server.client, settings, build_ports(settings)):
        yield settings.task_queue


@pytest.fixture
def control(sandbox) -> SandboxControl:
    sandbox.clear_faults()
    yield sandbox
    sandbox.clear_faults()


@pytest.fixture
async def billing(settings):
    adapter = StripeBilling(settings.stripe_base_url, settings.stripe_api_key, timeout=5)
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def webhooks(dev_server, settings, worker, monkeypatch):
    """`o2c webhooks` on a free port, registered with the sandbox, with a two-second
    dunning day set the way an operator would: through the environment."""
    monkeypatch.setenv("O2C_DUNNING_DAY_SECONDS", "2")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with webhook_ingress(dev_server.client, settings.model_copy(update={"webhook_port": port})) as url:
        yield url


class Customer:
    """One seeded customer with a 10-seat subscription at 50.00 USD a month."""

    def __init__(self, control: SandboxControl, postal_code: str = "94105", payment_method: str = "pm_card_visa"):
        self.control = control
        self.key = uuid.uuid4().hex[:8]
        self.account_id = f"cus_{self.key}"
        self.subscription_id = f"sub_{self.key}"
        self.contract_id = f"C-{self.key}"
        self.postal_code = postal_code
        self.payment_method = payment_method

    def seed(self) -> Customer:
        self.control.seed(
            customer={
                "id": self.account_id,
                "name": f"Customer {self.key}",
                "email": f"ap@{self.key}.test",
                "payment_method": self.payment_method,
                "address": {
                    "line1": "1 Market St",
                    "city": "San Francisco",
                    "region": "CA",
                    "postal_code": self.postal_code,
                    "country": "US",
                },
            },
            subscription={
                "id": self.subscription_id,
                "contract_id": self.contract_id,
                "currency": "USD",
                "items": [{"product": "seats", "description": "Platform seat", "quantity": 10, "unit_price": "50.00"}],
                "current_period_start": PERIOD_START.isoformat(),
                "current_period_end": PERIOD_END.isoformat(),
                "term_start": "2026-01-01",
                "term_end": "2027-01-01",
            },
        )
        return self

    def amendment(self, quantity: int = 12, **overrides) -> AmendmentRequest:
        fields = dict(
            amendment_id=f"IT-{self.key}-{uuid.uuid4().hex[:4]}",
            contract_id=self.contract_id,
            subscription_id=self.subscription_id,
            account_id=self.account_id,
            currency="USD",
            effective_date=date(2026, 11, 16),
            requested_by="sam.sales",
            reason="integration test",
            lines=[AmendedLine(product="seats", quantity=quantity, unit_price=Decimal("50.00"))],
        )
        fields.update(overrides)
        return AmendmentRequest(**fields)


@pytest.fixture
def customer(control) -> Customer:
    return Customer(control).seed()
