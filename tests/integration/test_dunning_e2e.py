"""Dunning for real: the sandbox fails a charge, signs and delivers the webhook to the
ingress, the workflow retries on a calendar shortened by configuration, the customer
brings a new card, and every system ends exactly right."""

from __future__ import annotations

import asyncio
from datetime import date

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus

from adapters.netsuite import NetSuiteErp
from canonical.journal import ChartOfAccounts, invoice_entry
from canonical.models import Account
from canonical.money import Money
from starter import client as o2c
from tests.integration.ledger_checks import assert_ledger, unapplied_now
from workflows.dunning import DunningOutcome, DunningResult, dunning_workflow_id
from workflows.kit.status import Status

pytestmark = pytest.mark.integration


async def book_in_erp(settings, account_id: str, invoice: dict) -> None:
    """The recurring invoice booked in NetSuite in the customer's name, as o2c books invoices,
    so that the payment that ends the dunning has a receivable to be applied to."""
    erp = NetSuiteErp(settings.netsuite_base_url, settings.netsuite_token, timeout=5)
    try:
        await erp.upsert_customer(Account(id=account_id, name=f"Customer {account_id}"), subsidiary="1")
        await erp.post_journal_entry(
            invoice_entry(
                external_id=f"dunning-it-{invoice['id']}-invoice",
                subsidiary="1",
                posting_date=date(2026, 11, 1),
                memo=f"Invoice {invoice['id']}",
                revenue=Money.from_minor(invoice["total"], invoice["currency"].upper()),
                tax=Money.zero(invoice["currency"].upper()),
                chart=ChartOfAccounts(),
                invoice_id=invoice["id"],
                customer=account_id,
            )
        )
    finally:
        await erp.aclose()


async def state_of(client, workflow_id: str) -> dict:
    return await client.get_workflow_handle(workflow_id).query("state", result_type=dict)


async def until(client, workflow_id: str, check, timeout: float = 60) -> dict:
    for _ in range(int(timeout * 10)):
        try:
            state = await state_of(client, workflow_id)
            if check(state):
                return state
        except Exception:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} never got there")


async def test_failed_charge_to_cash_through_signed_webhooks(dev_server, webhooks, control, settings):
    from tests.integration.conftest import Customer

    before = await unapplied_now(settings, ["US01"])
    customer = Customer(control, payment_method="pm_card_chargeDeclinedInsufficientFunds").seed()
    invoice = control.renewal_charge(customer.subscription_id)
    assert invoice["status"] == "open" and invoice["attempt_count"] == 1
    await book_in_erp(settings, customer.account_id, invoice)
    workflow_id = dunning_workflow_id(invoice["id"])
    client = dev_server.client

    # Days 1 and 3 of a two-second dunning day: two retries, both declined.
    state = await until(client, workflow_id, lambda s: len(s["attempts"]) >= 2, timeout=30)
    assert all(a["outcome"] == "declined" for a in state["attempts"])
    assert state["case_stage"] == "reminder"

    # Stripe delivers at least once: the same event five more times changes nothing.
    failed = next(
        e
        for e in control.records("stripe", "event")  # the recurring charge's own event
        if e["type"] == "invoice.payment_failed" and e["data"]["object"]["id"] == invoice["id"]
    )
    control.redeliver(failed["id"], times=5)
    await asyncio.sleep(1)

    # The customer brings a card that works: dunning retries at once and collects.
    async with httpx.AsyncClient(
        base_url=settings.stripe_base_url, timeout=10, headers={"Authorization": f"Bearer {settings.stripe_api_key}"}
    ) as stripe:
        (
            await stripe.post("/payment_methods/pm_card_visa/attach", data={"customer": customer.account_id})
        ).raise_for_status()
        (
            await stripe.post(
                f"/customers/{customer.account_id}", data={"invoice_settings[default_payment_method]": "pm_card_visa"}
            )
        ).raise_for_status()
    result = await asyncio.wait_for(
        client.get_workflow_handle(workflow_id, result_type=DunningResult).result(), timeout=60
    )
    assert result.outcome == DunningOutcome.CASH

    # One workflow for the invoice, whatever was delivered how often.
    for _ in range(100):  # visibility catches up with the close a moment after the result
        runs = [w async for w in client.list_workflows(f'WorkflowId = "{workflow_id}"')]
        if len(runs) > 1 or (runs and runs[0].status != WorkflowExecutionStatus.RUNNING):
            break
        await asyncio.sleep(0.1)
    assert len(runs) == 1 and runs[0].status == WorkflowExecutionStatus.COMPLETED
    for _ in range(100):  # the sandbox delivers on threads of its own
        deliveries = [d for d in control.deliveries(event=failed["id"]) if d["succeeded"]]
        if len(deliveries) >= 6:
            break
        await asyncio.sleep(0.1)
    assert len(deliveries) >= 6

    [paid] = [i for i in control.records("stripe", "invoice") if i["id"] == invoice["id"]]
    assert paid["status"] == "paid" and paid["amount_remaining"] == 0
    [case] = [
        c
        for c in control.records("netsuite", "customrecord_o2c_collection_case")
        if c.get("externalId") == f"{workflow_id}-case"
    ]
    assert case["custrecord_o2c_stage"] == "paid" and case["custrecord_o2c_status"] == "closed"
    [account] = [a for a in control.records("salesforce", "Account") if a["Id"] == customer.account_id]
    assert account["O2c_Dunning_Flag__c"] is False
    messages = [m for m in control.records("notifications", "message") if m["account_id"] == customer.account_id]
    templates = [m["template"] for m in messages]
    assert templates.count("dunning-day-0") == 1 and templates.count("dunning-paid") == 1
    assert len(templates) == len(set(templates))  # one notice per stage, never two
    assert not [
        e
        for e in control.records("entitlements", "restriction")
        if e.get("account_id") == customer.account_id and e.get("restricted")
    ]
    # The card payment that ended the dunning is applied in the ERP to the invoice's receivable.
    query = f'O2cProcess = "cash" AND O2cCustomer = "{customer.account_id}"'
    for _ in range(100):
        cash = [w.id async for w in client.list_workflows(query)]
        if cash:
            break
        await asyncio.sleep(0.2)
    [cash_application] = cash
    await o2c.wait_for_status(client, cash_application, Status.COMPLETED, timeout=60)
    await assert_ledger(settings, customers=[customer.account_id], entities=["US01"], since=before)
