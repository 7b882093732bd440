"""Amendments on the real dev server, the real worker and adapters, over HTTP to the sandbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from canonical.amendment import InvalidAmendment
from starter import client as o2c
from tests.integration.ledger_checks import assert_ledger
from workflows.amendment import AmendmentInput, AmendmentWorkflow, amendment_workflow_id
from workflows.kit.attention import OperatorAction
from workflows.kit.status import Status

pytestmark = pytest.mark.integration

SYSTEMS = ("stripe", "avatax", "netsuite", "entitlements", "notifications")


class Books:
    """What every system holds for one amendment workflow, read back from the sandbox."""

    def __init__(self, control, customer, workflow_id: str):
        self.subscription_updates = [
            u for u in control.records("stripe", "subscription_update") if u["subscription"] == customer.subscription_id
        ]
        self.invoices = [
            i for i in control.records("stripe", "invoice") if i.get("metadata", {}).get("o2c_workflow") == workflow_id
        ]
        codes = {i["id"] for i in self.invoices}
        self.tax_documents = [t for t in control.records("avatax", "transaction") if t["code"] in codes]
        self.journal_entries = [
            j for j in control.records("netsuite", "journalEntry") if j.get("externalId", "").startswith(workflow_id)
        ]
        self.messages = [
            m for m in control.records("notifications", "message") if m["account_id"] == customer.account_id
        ]
        self.entitlements = [
            e for e in control.records("entitlements", "entitlement") if e["account_id"] == customer.account_id
        ]
        [self.subscription] = [
            s for s in control.records("stripe", "subscription") if s["id"] == customer.subscription_id
        ]

    @property
    def seats(self) -> int:
        return self.subscription["items"]["data"][0]["quantity"]


def balanced(entry) -> bool:
    lines = entry["line"]["items"]
    return sum(Decimal(str(x.get("debit") or 0)) for x in lines) == sum(
        Decimal(str(x.get("credit") or 0)) for x in lines
    )


async def run(dev_server, worker, billing, request):
    handle = await o2c.start_amendment(dev_server.client, request, billing=billing, task_queue=worker)
    return handle, await asyncio.wait_for(handle.result(), timeout=120)


async def test_happy_path_books_everything_once(dev_server, worker, billing, control, customer, settings):
    handle, result = await run(dev_server, worker, billing, customer.amendment(quantity=12))

    assert result.status == Status.COMPLETED, result.message
    books = Books(control, customer, handle.id)
    assert len(books.subscription_updates) == 1 and books.seats == 12
    [invoice] = books.invoices
    # 15 of 30 days: -250.00 + 300.00; California's 7.25 % per line: -18.13 + 21.75.
    assert invoice["status"] == "open" and invoice["total"] == 5362
    [document] = books.tax_documents
    assert document["status"] == "Committed" and Decimal(str(document["totalTax"])) == Decimal("3.62")
    [entry] = books.journal_entries
    # Effective 16 November; every document carries the invoice's date, the day billing created it.
    invoice_date = datetime.fromtimestamp(invoice["created"], UTC).date().isoformat()
    assert balanced(entry) and entry["tranDate"] == invoice_date and document["date"][:10] == invoice_date
    assert [(e["product"], e["seats"]) for e in books.entitlements] == [("seats", 12)]
    assert len(books.messages) == 1
    description = await handle.describe()
    assert description.typed_search_attributes  # status, customer, contract are indexed
    # Starting the same amendment again lands on the finished workflow; nothing new is booked.
    again = await o2c.start_amendment(
        dev_server.client,
        customer.amendment(quantity=12, amendment_id=result.amendment_id),
        billing=billing,
        task_queue=worker,
    )
    assert again.id == handle.id and (await again.result()).status == Status.COMPLETED
    assert len(Books(control, customer, handle.id).invoices) == 1
    await assert_ledger(settings, customers=[customer.account_id])


async def test_faults_on_every_system_still_book_exactly_once(dev_server, worker, billing, control, customer, settings):
    # Each write path fails three times in turn: 5xx, 429, then commit-then-timeout (the
    # write happens, the response is lost), before the retry with the same key converges.
    # A fault takes one request and the next fault the next one. Per system: 5xx, then 429,
    # then commit-then-timeout (the write happens, the response is lost), then the retry
    # with the same key must converge. Stripe's three land on three different writes.
    sequences = {
        "stripe": [
            ("5xx", "POST", "/subscriptions/"),
            ("429", "POST", "/invoiceitems"),
            ("commit_then_timeout", "POST", "/finalize"),
        ],
        "avatax": [
            ("5xx", "POST", "transactions/create"),
            ("429", "POST", "transactions/create"),
            # every second create after those: the recorded SalesInvoice, not the quote
            ("commit_then_timeout", "POST", "transactions/create"),
        ],
        "netsuite": [(kind, "PUT", "journalEntry") for kind in ("5xx", "429", "commit_then_timeout")],
        "entitlements": [(kind, "PUT", "/accounts/") for kind in ("5xx", "429", "commit_then_timeout")],
        "notifications": [(kind, "POST", "/messages") for kind in ("5xx", "429", "commit_then_timeout")],
    }
    for system, faults in sequences.items():
        for kind, method, path in faults:
            every = 2 if system == "avatax" and kind == "commit_then_timeout" else None
            control.fault(system, kind, times=1, method=method, path_contains=path, hold_seconds=2, every=every)
    handle, result = await run(dev_server, worker, billing, customer.amendment(quantity=14))

    assert result.status == Status.COMPLETED, result.message
    fired = [(f["system"], f["path_contains"], f["kind"], f["fired"]) for f in control.faults()]
    assert all(f[3] == 1 for f in fired), fired
    books = Books(control, customer, handle.id)
    assert len(books.subscription_updates) == 1 and books.seats == 14
    assert len(books.invoices) == 1 and books.invoices[0]["status"] == "open"
    assert len([t for t in books.tax_documents if t["status"] == "Committed"]) == 1
    assert len(books.journal_entries) == 1 and balanced(books.journal_entries[0])
    assert len(books.messages) == 1
    await assert_ledger(settings, customers=[customer.account_id])


async def test_a_rollback_leaves_billing_tax_and_erp_as_they_were(
    dev_server, worker, billing, control, customer, settings
):
    # The entitlement service stays down past the step window; the operator aborts.
    control.fault("entitlements", "5xx", times=1000, method="PUT")
    request = customer.amendment(quantity=12)
    handle = await dev_server.client.start_workflow(
        AmendmentWorkflow.run,
        AmendmentInput(request=request, step_window=timedelta(seconds=4)),
        id=amendment_workflow_id(request.amendment_id),
        task_queue=worker,
    )
    parked = await o2c.wait_for_status(dev_server.client, handle.id, Status.NEEDS_ATTENTION)
    assert parked["attention"]["step"] == "entitlement seats"
    control.clear_faults()
    await o2c.resolve(dev_server.client, handle.id, OperatorAction.ABORT, operator="olga.ops")
    result = await asyncio.wait_for(handle.result(), timeout=60)

    assert result.status == Status.ROLLED_BACK
    books = Books(control, customer, handle.id)
    assert books.seats == 10 and len(books.subscription_updates) == 2  # changed, then restored
    assert [i["status"] for i in books.invoices] == ["void"]
    assert [t["status"] for t in books.tax_documents] == ["Cancelled"]
    entry, reversal = sorted(books.journal_entries, key=lambda e: e["externalId"])
    assert reversal["externalId"] == f"{entry['externalId']}-reversal" and balanced(reversal)
    debits = {x["account"]["id"]: x.get("debit") for x in entry["line"]["items"]}
    credits = {x["account"]["id"]: x.get("credit") for x in reversal["line"]["items"]}
    assert debits == credits
    assert all(e["seats"] == 10 for e in books.entitlements)
    assert not books.messages
    await assert_ledger(settings, customers=[customer.account_id])  # the reversal takes it all back


async def test_closed_period_parks_until_reopened_then_retry_books(dev_server, worker, billing, control, customer):
    # The entry carries the invoice's date, the day billing creates it (a UTC day): close that month.
    invoice_month = f"{datetime.now(UTC):%Y-%m}"
    control.set_period("1", invoice_month, closed=True)
    try:
        handle = await o2c.start_amendment(
            dev_server.client, customer.amendment(quantity=11), billing=billing, task_queue=worker
        )
        parked = await o2c.wait_for_status(dev_server.client, handle.id, Status.NEEDS_ATTENTION)
        assert parked["attention"]["step"] == "journal entry" and "closed" in parked["attention"]["message"]
        listed = await o2c.find_processes(dev_server.client, status=Status.NEEDS_ATTENTION)
        assert handle.id in {p["workflow_id"] for p in listed}
    finally:
        control.set_period("1", invoice_month, closed=False)
    await o2c.resolve(dev_server.client, handle.id, OperatorAction.RETRY, operator="olga.ops")
    assert (await asyncio.wait_for(handle.result(), timeout=60)).status == Status.COMPLETED
    assert len(Books(control, customer, handle.id).journal_entries) == 1


async def test_a_bad_request_starts_no_workflow(dev_server, worker, billing, control, customer):
    for bad in (
        customer.amendment(currency="EUR"),
        customer.amendment(quantity=-1),
        customer.amendment(subscription_id="sub_missing"),
        customer.amendment(effective_date=customer.amendment().effective_date.replace(year=2025)),
    ):
        with pytest.raises(InvalidAmendment):
            await o2c.start_amendment(dev_server.client, bad, billing=billing, task_queue=worker)
        with pytest.raises(Exception, match="not found"):
            await dev_server.client.get_workflow_handle(amendment_workflow_id(bad.amendment_id)).describe()
    assert Books(control, customer, "amendment-none").subscription_updates == []
