"""A renewal on the dev server: the start day brought forward by configuration, faults on
every write, and still one new term, one invoice, one tax document, one balanced entry."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest

from adapters.storage.schedules import SqlRevenueSchedules
from canonical.renewal import RenewalRequest, RenewedLine
from starter import client as o2c
from tests.integration.test_amendment_e2e import balanced
from workflows.renewal import RenewalOutcome, RenewalResult

pytestmark = pytest.mark.integration


async def test_renewal_books_the_new_term_once_despite_faults(
    dev_server, worker, billing, control, settings, monkeypatch
):
    monkeypatch.setenv("O2C_RENEWAL_DAY_SECONDS", "0.05")  # 20 days until the term: one second
    key = uuid.uuid4().hex[:8]
    today = date.today()
    term_end = today + timedelta(days=20)
    control.seed(
        customer={
            "id": f"cus_{key}",
            "name": f"Renewing {key}",
            "email": f"ap@{key}.test",
            "address": {
                "line1": "1 Market St",
                "city": "San Francisco",
                "region": "CA",
                "postal_code": "94105",
                "country": "US",
            },
        },
        subscription={
            "id": f"sub_{key}",
            "contract_id": f"C-{key}",
            "currency": "USD",
            "items": [{"product": "seats", "description": "Platform seat", "quantity": 10, "unit_price": "50.00"}],
            "current_period_start": (today - timedelta(days=10)).isoformat(),
            "current_period_end": term_end.isoformat(),
            "term_start": (term_end - timedelta(days=365)).isoformat(),
            "term_end": term_end.isoformat(),
        },
    )
    request = RenewalRequest(
        contract_id=f"C-{key}",
        subscription_id=f"sub_{key}",
        account_id=f"cus_{key}",
        term=str(term_end.year + 1),
        new_term_start=term_end,
        new_term_end=term_end.replace(year=term_end.year + 1),
        uplift_percent=Decimal(5),
        lines=[RenewedLine(product="seats", quantity=12)],
        requested_by="sam.sales",
    )
    for system, method, path in [
        ("stripe", "POST", "/v1/subscriptions"),
        ("stripe", "POST", "/invoiceitems"),
        ("avatax", "POST", "transactions/create"),
        ("netsuite", "PUT", "journalEntry"),
    ]:
        for kind in ("5xx", "429", "commit_then_timeout"):
            control.fault(system, kind, times=1, method=method, path_contains=path, hold_seconds=2)

    handle = await o2c.start_renewal(dev_server.client, request, billing=billing, task_queue=worker)
    again = await o2c.start_renewal(dev_server.client, request, billing=billing, task_queue=worker)
    assert again.id == handle.id
    result: RenewalResult = await asyncio.wait_for(handle.result(), timeout=120)

    assert result.outcome == RenewalOutcome.RENEWED, result.message
    assert all(f["fired"] == 1 for f in control.faults())
    new_terms = [
        s
        for s in control.records("stripe", "subscription")
        if s["metadata"].get("contract_id") == f"C-{key}" and s["id"] != f"sub_{key}"
    ]
    assert len(new_terms) == 1 and new_terms[0]["id"] == result.subscription_id
    [old] = [s for s in control.records("stripe", "subscription") if s["id"] == f"sub_{key}"]
    assert old["cancel_at"]  # the current term ends at the boundary
    invoices = [i for i in control.records("stripe", "invoice") if i["metadata"].get("o2c_workflow") == handle.id]
    assert len(invoices) == 1 and invoices[0]["total"] == 63000 + 4568  # 12 x 52.50, CA tax 7.25 %
    documents = [t for t in control.records("avatax", "transaction") if t["code"] == invoices[0]["id"]]
    assert [t["status"] for t in documents] == ["Committed"]
    entries = [j for j in control.records("netsuite", "journalEntry") if j["externalId"].startswith(handle.id)]
    assert len(entries) == 1 and balanced(entries[0])
    store = SqlRevenueSchedules(settings.database_url)
    try:
        [schedule] = await store.schedules_of_contract(f"C-{key}")
    finally:
        await store.aclose()
    # One obligation per product: the seats, allocated the whole term price.
    assert schedule.schedule_id == f"{handle.id}-seats" and schedule.total.amount == Decimal("7560.00")
    assert sum(line.amount.amount for line in schedule.lines) == Decimal("7560.00")
    assert schedule.ssp is not None and schedule.booked_on is not None
