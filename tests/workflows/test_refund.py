"""RefundWorkflow on the time-skipping test server: an operator's refund through the kit."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.worker import Worker

from canonical.credit import CreditPolicy, RefundRequest, RefundSource
from canonical.models import ApproverRole
from canonical.policy_amounts import per_currency
from tests.fakes import usd
from tests.fakes_credits import CreditSystems
from workflows.kit.approval import DecisionInput
from workflows.kit.status import Status
from workflows.refund import RefundInput, RefundResult, RefundState, RefundWorkflow, refund_workflow_id
from workflows.registry import ALL_WORKFLOWS

POLICY = CreditPolicy(finance=per_currency(USD=50), controller=per_currency(USD=5000))


@pytest.fixture
async def refund_world(env, systems, reconciliations):
    from activities.registry import all_activities

    systems.reconciliations = reconciliations
    credits = CreditSystems(systems)
    credits.payments.charges["ch_1"] = usd("200.00")
    task_queue = f"tq-{uuid.uuid4()}"
    async with Worker(
        env.client, task_queue=task_queue, workflows=ALL_WORKFLOWS, activities=all_activities(**credits.ports())
    ):
        yield task_queue, credits


def refund(amount: str, **overrides) -> RefundRequest:
    fields = dict(
        refund_id=f"R-{uuid.uuid4().hex[:6]}",
        charge_id="ch_1",
        amount=usd(amount),
        reason="requested_by_customer",
        explanation="customer paid twice by bank and card; the card payment goes back",
        requested_by="olga.ops",
        customer="cus_acme",
        source=RefundSource.UNAPPLIED_RECEIPTS,
    )
    fields.update(overrides)
    return RefundRequest(**fields)


async def until(handle, status: Status) -> RefundState:
    for _ in range(1200):
        current = await handle.query(RefundWorkflow.state, result_type=RefundState)
        if current.status == status:
            return current
        await asyncio.sleep(0.025)
    raise AssertionError(f"never reached {status}; last {current.status}: {current.stage}")


async def start(env, task_queue, request):
    return await env.client.start_workflow(
        RefundWorkflow.run,
        RefundInput(request=request, policy=POLICY),
        id=refund_workflow_id(request.refund_id),
        task_queue=task_queue,
        result_type=RefundResult,
    )


async def test_an_approved_refund_pays_back_and_books_it(env, refund_world, systems):
    task_queue, _ = refund_world
    handle = await start(env, task_queue, refund("120.00"))
    await until(handle, Status.AWAITING_APPROVAL)
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            RefundWorkflow.decide, DecisionInput(approver="olga.ops", role=ApproverRole.FINANCE, approved=True)
        )
    await handle.execute_update(
        RefundWorkflow.decide, DecisionInput(approver="fiona.finance", role=ApproverRole.FINANCE, approved=True)
    )
    result = await handle.result()
    assert result.status == Status.COMPLETED and result.refund and result.refund.amount == usd("120.00")
    [entry] = systems.erp.entries.values()
    assert {(x.account, x.debit, x.credit) for x in entry.lines} == {
        ("2150", usd("120.00"), None),
        ("1010", None, usd("120.00")),
    }


async def test_a_refund_above_what_the_charge_has_left_books_nothing(env, refund_world, systems):
    task_queue, credits = refund_world
    credits.payments.charges["ch_1"] = usd("60.00")
    first = await (await start(env, task_queue, refund("40.00"))).result()
    assert first.status == Status.COMPLETED
    second = await (await start(env, task_queue, refund("30.00"))).result()
    assert second.status == Status.FAILED and "greater than unrefunded" in second.message
    assert len(credits.payments.refunds) == 1 and len(systems.erp.entries) == 1
