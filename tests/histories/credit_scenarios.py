"""The recorded scenarios of the credit, dispute and refund workflows (see record.py).

Each takes the recorder's (env, task queue, systems); the credit fakes of
tests/fakes_credits.py ride on `systems.credits`, which record.py sets.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from adapters.errors import BusinessError
from canonical.credit import CreditPolicy, RefundRequest
from canonical.credits import CreditedLine, CreditReason, CreditRequest, Dispute, DisputeEvent, DisputeStatus
from canonical.dispute import DisputePolicy
from canonical.models import ApproverRole
from canonical.policy_amounts import per_currency
from tests.fakes import FakeSystems, usd
from tests.fakes_credits import CreditSystems, booked_invoice
from workflows.credit import CreditInput, CreditWorkflow, credit_workflow_id
from workflows.dispute import DISPUTE_EVENT_SIGNAL, DisputeInput, DisputeOutcome, DisputeWorkflow, dispute_workflow_id
from workflows.kit.approval import DecisionInput
from workflows.kit.status import Status
from workflows.refund import RefundInput, RefundWorkflow, refund_workflow_id

POLICY = CreditPolicy(finance=per_currency(USD=50), controller=per_currency(USD=5000))


def credits_of(systems: FakeSystems) -> CreditSystems:
    credits = getattr(systems, "credits", None)
    assert isinstance(credits, CreditSystems), "record.py gives every scenario the credit fakes"
    return credits


async def _poll(handle: WorkflowHandle, query, ready: Callable[[object], bool]) -> None:
    for _ in range(400):
        if ready(await handle.query(query)):
            return
        await asyncio.sleep(0.025)
    raise RuntimeError(f"{handle.id} never reached the expected state")


def _expect(actual: object, wanted: object) -> None:
    if actual != wanted:
        raise RuntimeError(f"the scenario ended in {actual!r}, not {wanted!r}")


async def _credit(env, tq, systems, amount: str) -> WorkflowHandle:
    booked_invoice(systems, credits_of(systems))
    request = CreditRequest(
        credit_id=f"CR-{uuid.uuid4().hex[:8]}",
        invoice_id="in_credit",
        reason=CreditReason.PRODUCT_UNSATISFACTORY,
        explanation="premium support was not delivered in November",
        requested_by="cindy.success",
        lines=[CreditedLine(line_id="il_support", amount=usd(amount))],
    )
    return await env.client.start_workflow(
        CreditWorkflow.run,
        CreditInput(request=request, policy=POLICY),
        id=credit_workflow_id(request.credit_id),
        task_queue=tq,
    )


async def credit_booked(env, tq, systems) -> WorkflowHandle:
    handle = await _credit(env, tq, systems, "40.00")
    _expect((await handle.result()).status, Status.COMPLETED)
    return handle


async def credit_approved(env, tq, systems) -> WorkflowHandle:
    handle = await _credit(env, tq, systems, "100.00")
    await _poll(handle, CreditWorkflow.state, lambda s: s.status == Status.AWAITING_APPROVAL)  # type: ignore[attr-defined]
    await handle.execute_update(
        CreditWorkflow.decide, DecisionInput(approver="fiona.finance", role=ApproverRole.FINANCE, approved=True)
    )
    _expect((await handle.result()).status, Status.COMPLETED)
    return handle


async def credit_compensation(env, tq, systems) -> WorkflowHandle:
    systems.ledger.fail(
        "receivables.post_credit_memo", BusinessError("netsuite", "the customer is inactive", code="INVALID_KEY")
    )
    handle = await _credit(env, tq, systems, "30.00")
    _expect((await handle.result()).status, Status.ROLLED_BACK)
    return handle


async def credit_waiting_for_approval(env, tq, systems) -> WorkflowHandle:
    handle = await _credit(env, tq, systems, "100.00")
    await _poll(handle, CreditWorkflow.state, lambda s: s.status == Status.AWAITING_APPROVAL)  # type: ignore[attr-defined]
    return handle


async def _dispute(env: WorkflowEnvironment, tq, policy: DisputePolicy | None = None) -> tuple[WorkflowHandle, Dispute]:
    now = await env.get_current_time()
    dispute = Dispute(
        dispute_id=f"dp_{uuid.uuid4().hex[:8]}",
        charge_id="ch_1",
        amount=usd("440.00"),
        reason="product_not_received",
        status=DisputeStatus.NEEDS_RESPONSE,
        invoice_id="in_disputed",
        customer="cus_acme",
        evidence_due_by=now + timedelta(days=10),
        fee=usd("15.00"),
        created=now,
    )
    handle = await env.client.start_workflow(
        DisputeWorkflow.run,
        DisputeInput(dispute=dispute, policy=policy or DisputePolicy()),
        id=dispute_workflow_id(dispute.dispute_id),
        task_queue=tq,
        start_signal=DISPUTE_EVENT_SIGNAL,
        start_signal_args=[
            DisputeEvent(event_id="evt_created", type="charge.dispute.created", dispute=dispute, occurred_at=now)
        ],
    )
    await _poll(handle, DisputeWorkflow.state, lambda s: bool(s.evidence_task))  # type: ignore[attr-defined]
    return handle, dispute


async def _closed(env, handle: WorkflowHandle, dispute: Dispute, status: DisputeStatus) -> None:
    now = await env.get_current_time()
    closed = dispute.model_copy(update={"status": status})
    await handle.signal(
        DISPUTE_EVENT_SIGNAL,
        DisputeEvent(event_id="evt_closed", type="charge.dispute.closed", dispute=closed, occurred_at=now),
    )


async def dispute_won(env, tq, systems) -> WorkflowHandle:
    handle, dispute = await _dispute(env, tq)
    await _closed(env, handle, dispute, DisputeStatus.WON)
    _expect((await handle.result()).outcome, DisputeOutcome.WON)
    return handle


async def dispute_lost_escalated(env, tq, systems) -> WorkflowHandle:
    handle, dispute = await _dispute(env, tq)
    await env.sleep(timedelta(days=9, hours=12))
    await _poll(handle, DisputeWorkflow.state, lambda s: s.escalated_at is not None)  # type: ignore[attr-defined]
    await _closed(env, handle, dispute, DisputeStatus.LOST)
    _expect((await handle.result()).outcome, DisputeOutcome.LOST)
    return handle


async def dispute_written_off(env, tq, systems) -> WorkflowHandle:
    handle, dispute = await _dispute(env, tq, DisputePolicy(write_off_lost=True))
    await _closed(env, handle, dispute, DisputeStatus.LOST)
    await _poll(handle, DisputeWorkflow.state, lambda s: s.status == Status.AWAITING_APPROVAL)  # type: ignore[attr-defined]
    await handle.execute_update(
        DisputeWorkflow.decide,
        DecisionInput(approver="carla.controller", role=ApproverRole.CONTROLLER, approved=True, comment="no evidence"),
    )
    _expect((await handle.result()).outcome, DisputeOutcome.WRITTEN_OFF)
    return handle


async def dispute_waiting_for_decision(env, tq, systems) -> WorkflowHandle:
    handle, _ = await _dispute(env, tq)
    return handle


async def refund_approved(env, tq, systems) -> WorkflowHandle:
    credits_of(systems).payments.charges["ch_1"] = usd("200.00")
    request = RefundRequest(
        refund_id=f"R-{uuid.uuid4().hex[:6]}",
        charge_id="ch_1",
        amount=usd("120.00"),
        reason="requested_by_customer",
        explanation="the customer paid twice; the card payment goes back",
        requested_by="olga.ops",
        customer="cus_acme",
    )
    handle = await env.client.start_workflow(
        RefundWorkflow.run,
        RefundInput(request=request, policy=POLICY),
        id=refund_workflow_id(request.refund_id),
        task_queue=tq,
    )
    await _poll(handle, RefundWorkflow.state, lambda s: s.status == Status.AWAITING_APPROVAL)  # type: ignore[attr-defined]
    await handle.execute_update(
        RefundWorkflow.decide, DecisionInput(approver="fiona.finance", role=ApproverRole.FINANCE, approved=True)
    )
    _expect((await handle.result()).status, Status.COMPLETED)
    return handle


CREDIT_SCENARIOS: dict[str, Callable[..., Awaitable[WorkflowHandle]]] = {
    "credit_booked": credit_booked,
    "credit_approved": credit_approved,
    "credit_compensation": credit_compensation,
    "credit_waiting_for_approval": credit_waiting_for_approval,
    "dispute_won": dispute_won,
    "dispute_lost_escalated": dispute_lost_escalated,
    "dispute_written_off": dispute_written_off,
    "dispute_waiting_for_decision": dispute_waiting_for_decision,
    "refund_approved": refund_approved,
}
