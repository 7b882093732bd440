"""Credits end to end on the dev server, the real worker and adapters, and the sandbox: a
credit note on an open invoice (it lowers what is due, the memo applied to the receivable), on
a paid invoice (to the customer's balance, or refunded), and a credit the ERP refuses, undone.
Each asserts what every system holds: Stripe's credit note, AvaTax's ReturnInvoice with the
original's tax date, NetSuite's memo, the journal entry balanced."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.netsuite import NetSuiteErp
from canonical.credit import RefundRequest
from canonical.credits import CreditReason, CreditRequest, CreditSettlement
from canonical.journal import ChartOfAccounts
from canonical.models import ApproverRole
from canonical.money import Money
from starter import client as o2c
from starter.cash_demo import charge_of
from starter.credits import start_credit, start_refund
from workflows.credit import CreditResult
from workflows.kit.attention import OperatorAction
from workflows.kit.status import Status

pytestmark = pytest.mark.integration


async def invoiced(dev_server, worker, billing, customer, *, paid: bool = False):
    amended = await o2c.start_amendment(
        dev_server.client, customer.amendment(quantity=12), billing=billing, task_queue=worker
    )
    invoice_id = (await asyncio.wait_for(amended.result(), timeout=90)).invoice_id
    if paid:
        attempt = await billing.retry_payment(invoice_id, idempotency_key=f"credit-e2e-{invoice_id}")
        assert attempt.amount_remaining.is_zero
    invoice = await billing.get_invoice(invoice_id)
    assert invoice is not None
    return invoice


def net_of(invoice) -> Money:
    return invoice.total - invoice.tax if invoice.tax is not None else invoice.total


async def credited(dev_server, worker, billing, invoice, *, settlement=CreditSettlement.CUSTOMER_BALANCE, then=None):
    request = CreditRequest(
        credit_id=f"IT-{uuid.uuid4().hex[:8]}",
        invoice_id=invoice.id,
        reason=CreditReason.PRODUCT_UNSATISFACTORY,
        explanation="two seats never provisioned",
        requested_by="cora.success",
        amount=net_of(invoice).times(Decimal("0.5")),
        settlement=settlement,
    )
    handle = await start_credit(dev_server.client, request, billing=billing, task_queue=worker)
    await o2c.wait_for_status(dev_server.client, handle.id, Status.AWAITING_APPROVAL, timeout=60)
    await o2c.decide(
        dev_server.client, handle.id, approver="fiona.finance", role=ApproverRole.FINANCE, approved=True, comment="ok"
    )
    if then is not None:
        await then(handle.id)
    result: CreditResult = await asyncio.wait_for(handle.result(), timeout=120)
    return request, handle.id, result


def stripe_note(control, credit_id: str) -> dict[str, Any]:
    [note] = [n for n in control.records("stripe", "credit_note") if n["metadata"].get("o2c_credit_id") == credit_id]
    return note


def tax_return(control, code: str) -> dict[str, Any]:
    [document] = [d for d in control.records("avatax", "transaction") if d.get("code") == code]
    return document


async def netsuite_memo(settings, external_id: str) -> dict[str, Any] | None:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {settings.netsuite_token}"}, timeout=10) as http:
        response = await http.get(f"{settings.netsuite_base_url}/record/v1/creditMemo/eid:{external_id}")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    memo: dict[str, Any] = response.json()
    return memo


def assert_tax_return(control, workflow_id: str, invoice, credited: Money) -> None:
    document = tax_return(control, f"{workflow_id}-return")
    assert document["type"] == "ReturnInvoice"
    assert document["taxOverride"]["type"] == "TaxDate"
    assert document["taxOverride"]["taxDate"] == (invoice.created or date.today()).isoformat()
    assert Decimal(str(document["totalAmount"])) == -net_of_credit(credited, document)


def net_of_credit(credited: Money, document: dict[str, Any]) -> Decimal:
    """The returned amount before tax: what was credited less the (negative) tax returned."""
    return credited.amount + Decimal(str(document["totalTax"]))


async def journal_entry(settings, external_id: str):
    erp = NetSuiteErp(settings.netsuite_base_url, settings.netsuite_token, timeout=5)
    try:
        entry = await erp.get_journal_entry(external_id)
    finally:
        await erp.aclose()
    assert entry is not None
    debits = sum((line.debit.amount for line in entry.lines if line.debit), Decimal(0))
    credits = sum((line.credit.amount for line in entry.lines if line.credit), Decimal(0))
    assert debits == credits > 0
    return entry


async def receivable_of(settings, invoice_id: str) -> str | None:
    erp = NetSuiteErp(settings.netsuite_base_url, settings.netsuite_token, timeout=5)
    try:
        return await erp.receivable_document(invoice_id, subsidiary="1")
    finally:
        await erp.aclose()


async def test_a_credit_on_an_open_invoice_lowers_what_is_due_in_every_system(
    dev_server, worker, billing, settings, customer, control
):
    invoice = await invoiced(dev_server, worker, billing, customer)
    request, workflow_id, result = await credited(dev_server, worker, billing, invoice)
    assert result.status == Status.COMPLETED, result.message
    assert result.credited is not None and result.credited.amount > request.amount.amount

    note = stripe_note(control, request.credit_id)
    assert note["status"] == "issued" and note["type"] == "pre_payment"
    assert note["total"] == result.credited.minor and note["invoice"] == invoice.id
    after = await billing.get_invoice(invoice.id)
    assert after.amount_remaining == invoice.total - result.credited

    assert_tax_return(control, workflow_id, invoice, result.credited)

    memo = await netsuite_memo(settings, f"{workflow_id}-memo")
    assert memo is not None
    receivable = await receivable_of(settings, invoice.id)
    applied = [(line["doc"]["id"], Decimal(str(line["amount"]))) for line in memo["apply"]["items"]]
    assert applied == [(receivable, result.credited.amount)]

    entry = await journal_entry(settings, f"{workflow_id}-entry")
    assert entry.invoice_id == invoice.id


@pytest.mark.parametrize("settlement", [CreditSettlement.CUSTOMER_BALANCE, CreditSettlement.REFUND])
async def test_a_credit_on_a_paid_invoice_goes_to_the_balance_or_is_refunded(
    dev_server, worker, billing, settings, customer, control, settlement
):
    invoice = await invoiced(dev_server, worker, billing, customer, paid=True)
    request, workflow_id, result = await credited(dev_server, worker, billing, invoice, settlement=settlement)
    assert result.status == Status.COMPLETED, result.message

    note = stripe_note(control, request.credit_id)
    assert note["status"] == "issued" and note["type"] == "post_payment"
    assert note["post_payment_amount"] == result.credited.minor
    if settlement == CreditSettlement.REFUND:
        assert note["refund"] and not note.get("customer_balance_transaction")
        [refund] = [r for r in control.records("stripe", "refund") if r["id"] == note["refund"]]
        assert refund["amount"] == result.credited.minor
    else:
        assert note["customer_balance_transaction"] and not note.get("refund")

    assert_tax_return(control, workflow_id, invoice, result.credited)
    memo = await netsuite_memo(settings, f"{workflow_id}-memo")
    assert memo is not None and memo["apply"]["items"] == []  # nothing left due to apply it to
    await journal_entry(settings, f"{workflow_id}-entry")


async def refused_credit(dev_server, worker, billing, customer, control):
    """NetSuite refuses the credit's postings (its period is closed: the sandbox's injected
    faults are all transient, which o2c retries); the operator aborts."""
    invoice = await invoiced(dev_server, worker, billing, customer)
    period = date.today().strftime("%Y-%m")

    async def abort(workflow_id: str) -> None:
        await o2c.wait_for_status(dev_server.client, workflow_id, Status.NEEDS_ATTENTION, timeout=90)
        await o2c.resolve(
            dev_server.client, workflow_id, OperatorAction.ABORT, operator="olga.ops", comment="period closed"
        )

    control.set_period("1", period, closed=True)
    try:
        request, workflow_id, result = await credited(dev_server, worker, billing, invoice, then=abort)
    finally:
        control.set_period("1", period, closed=False)
    assert result.status == Status.ROLLED_BACK, result.message
    return invoice, request, workflow_id, result


async def test_a_credit_the_erp_refuses_is_undone_in_billing_tax_and_the_erp(
    dev_server, worker, billing, settings, customer, control
):
    invoice, request, workflow_id, result = await refused_credit(dev_server, worker, billing, customer, control)
    assert {"credit note", "tax return", "credit memo"} <= set(result.compensated)
    assert stripe_note(control, request.credit_id)["status"] == "void"
    assert (await billing.get_invoice(invoice.id)).amount_remaining == invoice.total
    assert tax_return(control, f"{workflow_id}-return")["status"] == "Cancelled"  # voided as a ReturnInvoice
    assert await netsuite_memo(settings, f"{workflow_id}-memo") is None
    erp = NetSuiteErp(settings.netsuite_base_url, settings.netsuite_token, timeout=5)
    try:
        assert await erp.get_journal_entry(f"{workflow_id}-entry") is None
    finally:
        await erp.aclose()


async def test_a_refund_an_operator_decides_is_paid_back_and_booked(
    dev_server, worker, billing, settings, customer, control
):
    invoice = await invoiced(dev_server, worker, billing, customer, paid=True)
    request = RefundRequest(
        refund_id=f"IT-{uuid.uuid4().hex[:8]}",
        charge_id=charge_of(control, invoice.id),
        amount=Money.of("20.00", "USD"),
        reason="requested_by_customer",
        explanation="goodwill after a support ticket",
        requested_by="olga.ops",
        customer=customer.account_id,
        invoice_id=invoice.id,
    )
    handle = await start_refund(dev_server.client, request, billing=billing, task_queue=worker)
    await o2c.wait_for_status(dev_server.client, handle.id, Status.AWAITING_APPROVAL, timeout=60)
    await o2c.decide(
        dev_server.client, handle.id, approver="fiona.finance", role=ApproverRole.FINANCE, approved=True, comment="ok"
    )
    result = await asyncio.wait_for(handle.result(), timeout=90)
    assert result.status == Status.COMPLETED, result.message
    assert result.refund is not None and result.refund.amount == request.amount
    [refund] = [r for r in control.records("stripe", "refund") if r["id"] == result.refund.refund_id]
    assert (refund["charge"], refund["amount"], refund["status"]) == (request.charge_id, 2000, "succeeded")
    entry = await journal_entry(settings, f"{handle.id}-entry")
    chart = ChartOfAccounts()
    assert {(x.account, x.debit, x.credit) for x in entry.lines} == {
        (chart.customer_credit, request.amount, None),
        (chart.cash, None, request.amount),
    }
