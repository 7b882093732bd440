"""Card disputes end to end on the dev server, the real worker and adapters, and the sandbox:
an amendment's invoice paid by card, the charge disputed through the sandbox's control plane
(as a card network would), its signed charge.dispute.* webhooks delivered to o2c's ingress,
which starts and signals `dispute-<id>`; the dispute
won or lost. The ERP holds the withdrawal, and the reinstatement or the chargeback, balanced."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

import pytest
from temporalio.service import RPCError

from adapters.netsuite import NetSuiteErp
from canonical.journal import ChartOfAccounts
from starter import client as o2c
from starter.cash_demo import charge_of
from workflows.dispute import DisputeOutcome, DisputeResult, dispute_workflow_id
from workflows.kit.status import Status

pytestmark = pytest.mark.integration

CHART = ChartOfAccounts()


async def disputed(dev_server, worker, webhooks, billing, control, customer, closed_as: str):
    amended = await o2c.start_amendment(
        dev_server.client, customer.amendment(quantity=12), billing=billing, task_queue=worker
    )
    invoice_id = (await asyncio.wait_for(amended.result(), timeout=90)).invoice_id
    paid = await billing.retry_payment(invoice_id, idempotency_key=f"dispute-e2e-{invoice_id}")
    assert paid.amount_remaining.is_zero
    dispute = control.open_dispute(charge_of(control, invoice_id), reason="fraudulent")
    workflow_id = dispute_workflow_id(dispute["id"])
    state: dict = {}
    for _ in range(300):
        with contextlib.suppress(RPCError):  # the ingress may not have started it yet
            state = await o2c.process_state(dev_server.client, workflow_id)
        if state.get("funds_withdrawn") and state.get("evidence_task"):
            break
        await asyncio.sleep(0.1)
    assert state["funds_withdrawn"] and state["evidence_task"], state
    assert state["invoice_id"] == invoice_id and state["account_id"] == customer.account_id

    control.close_dispute(dispute["id"], closed_as)
    handle = dev_server.client.get_workflow_handle(workflow_id, result_type=DisputeResult)
    result = await asyncio.wait_for(handle.result(), timeout=120)
    done = await o2c.wait_for_status(dev_server.client, workflow_id, Status.COMPLETED, timeout=30)
    return paid.amount_paid, result, done


async def entries(settings, external_ids: list[str]):
    erp = NetSuiteErp(settings.netsuite_base_url, settings.netsuite_token, timeout=5)
    try:
        found = [await erp.get_journal_entry(x) for x in external_ids]
    finally:
        await erp.aclose()
    for entry in found:
        assert entry is not None
        debits = sum((line.debit.amount for line in entry.lines if line.debit), Decimal(0))
        credits = sum((line.credit.amount for line in entry.lines if line.credit), Decimal(0))
        assert debits == credits > 0
    return found


def amounts(entry, side: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for line in entry.lines:
        money = getattr(line, side)
        if money is not None:
            out[line.account] = out.get(line.account, Decimal(0)) + money.amount
    return out


async def test_a_dispute_won_has_its_funds_reinstated(
    dev_server, worker, webhooks, billing, settings, control, customer
):
    amount, result, _ = await disputed(dev_server, worker, webhooks, billing, control, customer, "won")
    assert result.outcome == DisputeOutcome.WON, result.message
    withdrawn_id, reinstated_id = result.entries
    assert withdrawn_id.endswith("-withdrawn") and reinstated_id.endswith("-reinstated")
    withdrawn, reinstated = await entries(settings, result.entries)
    assert amounts(withdrawn, "debit")[CHART.disputed_funds] == amount.amount
    assert amounts(withdrawn, "debit")[CHART.dispute_fees] == Decimal("15.00")  # the sandbox's US fee
    assert amounts(reinstated, "debit") == {CHART.cash: amount.amount}
    assert amounts(reinstated, "credit") == {CHART.disputed_funds: amount.amount}


async def test_a_dispute_lost_books_the_chargeback(dev_server, worker, webhooks, billing, settings, control, customer):
    amount, result, state = await disputed(dev_server, worker, webhooks, billing, control, customer, "lost")
    assert result.outcome == DisputeOutcome.LOST, result.message
    assert [x.rsplit("-", 1)[-1] for x in result.entries] == ["withdrawn", "chargeback"]
    _, chargeback = await entries(settings, result.entries)
    assert amounts(chargeback, "debit") == {CHART.chargeback_loss: amount.amount}
    assert amounts(chargeback, "credit") == {CHART.disputed_funds: amount.amount}
    assert state["dispute"]["status"] == "lost"
