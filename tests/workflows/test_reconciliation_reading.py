"""A reader that dies mid-period resumes at the page its last heartbeat named: nothing is
read twice into the staging, nothing is left out (ActivityEnvironment, the real store)."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from temporalio.testing import ActivityEnvironment

from activities.inputs import OpenRun, ReadSystem
from activities.reconciliation import ReconciliationActivities
from adapters.errors import TransientError
from canonical.models import Invoice, LegalEntity
from canonical.money import Money
from canonical.reconciliation import KeyRange
from tests.fakes import FakeSystems, usd

ENTITY = LegalEntity(code="US01", company_code="US01", functional_currency="USD", erp_subsidiary="1")


class DiesAfter:
    """Billing that answers `pages` pages, then drops the connection (a worker killed mid-read)."""

    def __init__(self, billing, pages: int):
        self.billing, self.pages = billing, pages

    async def list_invoices_page(self, **kwargs):
        if self.pages == 0:
            raise TransientError("stripe", "connection reset", code="connection")
        self.pages -= 1
        return await self.billing.list_invoices_page(**kwargs, limit=10)


@pytest.fixture
def systems(reconciliations) -> FakeSystems:
    systems = FakeSystems()
    systems.reconciliations = reconciliations
    for n in range(95):
        systems.billing.invoices[f"in_{n:03d}"] = Invoice(
            id=f"in_{n:03d}",
            account_id="cus_1",
            status="open",
            currency="USD",
            total=usd("10.00"),
            created=date(2026, 10, 1 + n % 28),
        )
    return systems


async def test_a_reader_resumes_at_its_last_heartbeat(systems, reconciliations):
    run_id = "US01-2026-10-resume"
    dying = ReconciliationActivities(
        DiesAfter(systems.billing, pages=4), systems.tax, systems.erp, systems.schedules, reconciliations, systems.usage
    )
    env = ActivityEnvironment()
    beats: list[tuple] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    request = ReadSystem(run_id=run_id, entity=ENTITY, period="2026-10")
    await env.run(
        dying.open_run, OpenRun(run_id=run_id, legal_entity="US01", period="2026-10", started_at="2026-11-01T00:00:00Z")
    )
    with pytest.raises(Exception, match="connection reset"):
        await env.run(dying.read_billing, request)
    assert beats[-1] == ("40", 40)  # four pages of ten staged, and said so

    # The next attempt starts from what the last heartbeat said.
    calls_before = systems.ledger.count("billing.list_invoices")
    env.info = dataclasses.replace(env.info, attempt=2, heartbeat_details=list(beats[-1]))
    healthy = ReconciliationActivities(
        DiesAfter(systems.billing, pages=100),
        systems.tax,
        systems.erp,
        systems.schedules,
        reconciliations,
        systems.usage,
    )
    assert await env.run(healthy.read_billing, request) == 95
    assert systems.ledger.count("billing.list_invoices") - calls_before == 6  # pages 5..10 only
    staged = await reconciliations.staged(run_id, KeyRange(after="", last="~"))
    assert sorted(k for k, _, _ in staged) == [f"invoice:in_{n:03d}" for n in range(95)]
    assert (await reconciliations.run(run_id)).billing_documents == 95


async def test_an_entity_reads_only_its_own_invoices_from_a_billing_account_it_shares(systems, reconciliations):
    """DE01 bills from the same Stripe account as US01: the invoices o2c created name their
    entity, and each entity's run stages its own (and those that name none)."""
    for n in range(5):
        systems.billing.invoices[f"in_de_{n}"] = Invoice(
            id=f"in_de_{n}",
            account_id="cus_de",
            status="open",
            currency="EUR",
            total=Money.of("10.00", "EUR"),
            created=date(2026, 10, 2),
            metadata={"legal_entity": "DE01"},
        )
    systems.billing.invoices["in_us_named"] = Invoice(
        id="in_us_named",
        account_id="cus_1",
        status="open",
        currency="USD",
        total=usd("10.00"),
        created=date(2026, 10, 3),
        metadata={"legal_entity": "US01"},
    )
    activities = ReconciliationActivities(
        systems.billing, systems.tax, systems.erp, systems.schedules, reconciliations, systems.usage
    )
    env = ActivityEnvironment()
    de01 = LegalEntity(code="DE01", company_code="1010", functional_currency="EUR", erp="sap", erp_subsidiary="1010")
    for entity, expected in ((ENTITY, 96), (de01, 100)):
        run_id = f"{entity.code}-2026-10-shared-account"
        await env.run(
            activities.open_run,
            OpenRun(run_id=run_id, legal_entity=entity.code, period="2026-10", started_at="2026-11-01T00:00:00Z"),
        )
        staged = await env.run(activities.read_billing, ReadSystem(run_id=run_id, entity=entity, period="2026-10"))
        # US01: its 95 unnamed invoices and the one naming it; DE01: the 95 unnamed and its 5.
        assert staged == expected
