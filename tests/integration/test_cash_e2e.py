"""A card payment, end to end: Stripe charges an amendment's invoice, its signed
`charge.succeeded` reaches the webhook ingress, the receipt is kept and applied by
`cash-<receipt id>` on the real worker: a NetSuite customer payment applied to the invoice's
receivable, in the Stripe clearing account."""

from __future__ import annotations

import asyncio

import pytest

from adapters.netsuite import NetSuiteErp
from canonical.journal import ChartOfAccounts
from starter import client as o2c
from tests.integration.ledger_checks import assert_ledger, unapplied_now
from workflows.kit.status import Status

pytestmark = pytest.mark.integration


async def test_a_card_payment_is_applied_in_the_erp_to_the_invoice_it_paid(
    dev_server, worker, webhooks, billing, settings, customer
):
    before = await unapplied_now(settings, ["US01"])
    amended = await o2c.start_amendment(
        dev_server.client, customer.amendment(quantity=12), billing=billing, task_queue=worker
    )
    invoice_id = (await asyncio.wait_for(amended.result(), timeout=60)).invoice_id
    attempt = await billing.retry_payment(invoice_id, idempotency_key=f"cash-e2e-{invoice_id}")
    assert attempt.amount_remaining.is_zero

    query = f'O2cProcess = "cash" AND O2cCustomer = "{customer.account_id}"'
    found: list[str] = []
    for _ in range(100):
        found = [w.id async for w in dev_server.client.list_workflows(query)]
        if found:
            break
        await asyncio.sleep(0.2)
    [workflow_id] = found
    assert workflow_id.startswith("cash-stripe:platform:ch_")
    state = await o2c.wait_for_status(dev_server.client, workflow_id, Status.COMPLETED, timeout=60)
    assert state["by_rule"] == {"exact_reference": 1}
    assert state["applied"] == {"USD": attempt.amount_paid.model_dump(mode="json")}

    erp = NetSuiteErp(settings.netsuite_base_url, settings.netsuite_token, timeout=5)
    try:
        payment = await erp.get_customer_payment(workflow_id)  # external id cash-<receipt id>
        receivable = await erp.receivable_document(invoice_id, subsidiary="1")
    finally:
        await erp.aclose()
    assert payment is not None and payment.customer == customer.account_id
    assert payment.account == ChartOfAccounts().cash
    assert [(a.erp_document, a.amount) for a in payment.applications] == [(receivable, attempt.amount_paid)]
    await assert_ledger(settings, customers=[customer.account_id], entities=["US01"], since=before)
