from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.registry import all_activities
from adapters.storage.reconciliation import SqlReconciliationStore
from adapters.temporal import register_search_attributes
from canonical.models import Account, Address, AmendedLine, AmendmentRequest, Subscription
from starter.binaries import test_server_binary
from tests.fakes import FakeSystems, seat_line
from workflows.kit.status import SEARCH_ATTRIBUTES
from workflows.registry import ALL_WORKFLOWS


@pytest.fixture(scope="session")
async def env():
    environment = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=test_server_binary()
    )
    await register_search_attributes(environment.client, "default", SEARCH_ATTRIBUTES)
    yield environment
    await environment.shutdown()


@pytest.fixture
def systems() -> FakeSystems:
    s = FakeSystems()
    s.billing.accounts["cus_acme"] = Account(
        id="cus_acme",
        name="Acme Corp",
        email="billing@acme.test",
        billing_address=Address(
            line1="1 Market St", city="San Francisco", region="CA", postal_code="94105", country="US"
        ),
    )
    s.billing.subscriptions["sub_acme"] = Subscription(
        id="sub_acme",
        account_id="cus_acme",
        contract_id="C-100",
        currency="USD",
        status="active",
        lines=[seat_line(10)],
        current_period_start=date(2026, 11, 1),
        current_period_end=date(2026, 12, 1),
        term_start=date(2026, 1, 1),
        term_end=date(2027, 1, 1),
    )
    return s


@pytest.fixture(scope="session")
def reconciliations(tmp_path_factory):
    """o2c's own database is part of o2c, not an outside system: the real store, on SQLite."""
    store = SqlReconciliationStore(f"sqlite:///{tmp_path_factory.mktemp('o2c') / 'o2c.sqlite'}")
    yield store
    store.engine.dispose()


@pytest.fixture
async def worker(env, systems, reconciliations):
    task_queue = f"tq-{uuid.uuid4()}"
    systems.reconciliations = reconciliations
    async with Worker(
        env.client, task_queue=task_queue, workflows=ALL_WORKFLOWS, activities=all_activities(**systems.ports())
    ):
        yield task_queue


def amendment(quantity: int = 12, price: str = "50.00", discount: str = "0", **overrides) -> AmendmentRequest:
    fields = dict(
        amendment_id=f"A-{uuid.uuid4().hex[:8]}",
        contract_id="C-100",
        subscription_id="sub_acme",
        account_id="cus_acme",
        currency="USD",
        effective_date=date(2026, 11, 16),
        lines=[
            AmendedLine(
                product="seats", quantity=quantity, unit_price=Decimal(price), discount_percent=Decimal(discount)
            )
        ],
        requested_by="sam.sales",
        reason="customer added seats",
    )
    fields.update(overrides)
    return AmendmentRequest(**fields)


@pytest.fixture
async def today(env) -> date:
    return (await env.get_current_time()).date()


@pytest.fixture
def renewing(systems, today):
    """A 10-seat subscription whose term ends in 120 days."""
    term_end = today + timedelta(days=120)
    systems.contract_id = f"C-{uuid.uuid4().hex[:6]}"
    systems.billing.subscriptions["sub_acme"] = Subscription(
        id="sub_acme",
        account_id="cus_acme",
        contract_id=systems.contract_id,
        currency="USD",
        status="active",
        lines=[seat_line(10)],
        current_period_start=today - timedelta(days=10),
        current_period_end=today + timedelta(days=20),
        term_start=term_end - timedelta(days=365),
        term_end=term_end,
    )
    return systems
