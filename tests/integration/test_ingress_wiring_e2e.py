"""The embedded stack's webhook ingress, end to end: the sandbox's Stripe sends its signed
events to it as Stripe would. A finalised invoice becomes an open item in o2c's cash store;
a card dispute starts `dispute-<id>` on the real worker, which books the withdrawal in
NetSuite and the funds back once the dispute is won."""

from __future__ import annotations

import asyncio

import pytest

from adapters.netsuite import NetSuiteErp
from adapters.storage.cash import SqlCashStore
from starter import client as o2c
from workflows.dispute import DisputeOutcome, DisputeResult, DisputeWorkflow

pytestmark = pytest.mark.integration


async def test_a_finalised_invoice_reaches_the_cash_store(dev_server, worker, webhooks, billing, settings, customer):
    amended = await o2c.start_amendment(
        dev_server.client, customer.amendment(quantity=12), billing=billing, task_queue=worker
    )
    invoice_id = (await asyncio.wait_for(amended.result(), timeout=60)).invoice_id
    invoice = await billing.get_invoice(invoice_id)
    assert invoice is not None and invoice.status == "open"

    store = SqlCashStore(settings.database_url)
    try:
        items = []
        for _ in range(100):
            items = await store.open_items(invoice_refs=[invoice_id])
            if items:
                break
            await asyncio.sleep(0.1)
    finally:
        await store.aclose()
    [item] = items
    assert (item.customer, item.legal_entity, item.number) == (customer.account_id, "US01", invoice.number)
    assert item.total == item.balance == invoice.total


async def test_a_card_dispute_is_booked_by_its_workflow_and_won(
    dev_server, worker, webhooks, billing, settings, customer, control
):
    invoice = control.renewal_charge(customer.subscription_id, amount=5000)
    assert invoice["status"] == "paid"
    dispute = control.open_dispute(invoice["charge"])
    workflow_id = f"dispute-{dispute['id']}"

    handle = dev_server.client.get_workflow_handle(workflow_id, result_type=DisputeResult)
    state = None
    for _ in range(200):
        try:
            state = await handle.query(DisputeWorkflow.state)
        except Exception:  # not started yet: the event is on its way
            state = None
        if state is not None and state.evidence_task:
            break
        await asyncio.sleep(0.1)
    assert state is not None and state.funds_withdrawn
    assert (state.invoice_id, state.account_id) == (invoice["id"], customer.account_id)

    control.close_dispute(dispute["id"], "won")
    result = await asyncio.wait_for(handle.result(), timeout=60)
    assert result.outcome == DisputeOutcome.WON
    erp = NetSuiteErp(settings.netsuite_base_url, settings.netsuite_token, timeout=5)
    try:
        for external_id in (f"{workflow_id}-withdrawn", f"{workflow_id}-reinstated"):
            assert await erp.get_journal_entry(external_id) is not None, external_id
    finally:
        await erp.aclose()
