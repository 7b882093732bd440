"""DisputeWorkflow on the time-skipping test server, with the real activities over fakes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from canonical.credits import Dispute, DisputeEvent, DisputeStatus
from canonical.dispute import DisputePolicy, LostDisputeBooking
from canonical.models import ApproverRole, PaymentEvent, PaymentEventKind
from tests.fakes import usd
from tests.fakes_credits import CreditSystems
from tests.workflows.test_credit import ListeningDunning, heard_by
from workflows.dispute import (
    DISPUTE_EVENT_SIGNAL,
    DisputeInput,
    DisputeOutcome,
    DisputeResult,
    DisputeState,
    DisputeWorkflow,
    dispute_workflow_id,
)
from workflows.kit.approval import DecisionInput
from workflows.kit.status import Status
from workflows.registry import ALL_WORKFLOWS


@pytest.fixture
def credits(systems) -> CreditSystems:
    systems.billing.accounts["cus_acme"] = systems.billing.accounts["cus_acme"].model_copy(
        update={"success_owner": "olivia.owner"}
    )
    return CreditSystems(systems)


@pytest.fixture
async def dispute_worker(env, systems, credits, reconciliations):
    from activities.registry import all_activities

    systems.reconciliations = reconciliations
    task_queue = f"tq-{uuid.uuid4()}"
    async with Worker(
        env.client, task_queue=task_queue, workflows=ALL_WORKFLOWS, activities=all_activities(**credits.ports())
    ):
        yield task_queue


def dispute(now: datetime, status: DisputeStatus = DisputeStatus.NEEDS_RESPONSE, **overrides) -> Dispute:
    fields = dict(
        dispute_id=f"dp_{uuid.uuid4().hex[:8]}",
        charge_id="ch_1",
        amount=usd("440.00"),
        reason="product_not_received",
        status=status,
        invoice_id="in_disputed",
        customer="cus_acme",
        evidence_due_by=now + timedelta(days=10),
        fee=usd("15.00"),
        created=now,
    )
    fields.update(overrides)
    return Dispute(**fields)


def event(d: Dispute, type_: str, event_id: str, now: datetime) -> DisputeEvent:
    return DisputeEvent(event_id=event_id, type=type_, dispute=d, occurred_at=now)


async def start(env, task_queue, d: Dispute, now: datetime, policy: DisputePolicy | None = None) -> WorkflowHandle:
    """As the ingress does: signal-with-start with the created event."""
    return await env.client.start_workflow(
        DisputeWorkflow.run,
        DisputeInput(dispute=d, policy=policy or DisputePolicy()),
        id=dispute_workflow_id(d.dispute_id),
        task_queue=task_queue,
        start_signal=DISPUTE_EVENT_SIGNAL,
        start_signal_args=[event(d, "charge.dispute.created", "evt_created", now)],
        result_type=DisputeResult,
    )


async def until(handle, ready) -> DisputeState:
    for _ in range(1200):
        current = await handle.query(DisputeWorkflow.state, result_type=DisputeState)
        if ready(current):
            return current
        await asyncio.sleep(0.025)
    raise AssertionError(f"never ready; last {current.status}: {current.stage}")


def lines_of(entry):
    return {(x.account, x.debit, x.credit) for x in entry.lines}


async def close(handle, d: Dispute, status: DisputeStatus, now: datetime, event_id: str = "evt_closed") -> None:
    closed = d.model_copy(update={"status": status})
    await handle.signal(DISPUTE_EVENT_SIGNAL, event(closed, "charge.dispute.closed", event_id, now))


@pytest.fixture
async def dunning(env, dispute_worker):
    queue = f"{dispute_worker}-dunning"
    async with Worker(
        env.client, task_queue=queue, workflows=[ListeningDunning], workflow_runner=UnsandboxedWorkflowRunner()
    ):
        handle = await env.client.start_workflow(
            ListeningDunning.run, id=f"dunning-in_disputed-{uuid.uuid4().hex[:4]}", task_queue=queue
        )
        yield handle
        await handle.terminate()


async def test_a_won_dispute_books_the_withdrawal_the_fee_and_the_funds_back(env, dispute_worker, systems):
    now = await env.get_current_time()
    d = dispute(now)
    handle = await start(env, dispute_worker, d, now)
    waiting = await until(handle, lambda s: s.evidence_task)
    assert waiting.funds_withdrawn and waiting.status == Status.RUNNING
    [task] = systems.crm.tasks.values()
    assert task.owner == "olivia.owner" and task.due_on == d.evidence_due_by.date() and task.priority == ""

    await close(handle, d, DisputeStatus.WON, now)
    result = await handle.result()
    assert result.outcome == DisputeOutcome.WON
    withdrawn = systems.erp.entries[f"{handle.id}-withdrawn"]
    assert lines_of(withdrawn) == {
        ("1300", usd("440.00"), None),
        ("1010", None, usd("440.00")),
        ("6150", usd("15.00"), None),
        ("1010", None, usd("15.00")),
    }
    assert lines_of(systems.erp.entries[f"{handle.id}-reinstated"]) == {
        ("1010", usd("440.00"), None),
        ("1300", None, usd("440.00")),
    }
    assert len(systems.erp.entries) == 2


async def test_the_same_event_twice_books_once(env, dispute_worker, systems):
    now = await env.get_current_time()
    d = dispute(now)
    handle = await start(env, dispute_worker, d, now)
    await until(handle, lambda s: s.evidence_task)
    reinstated = event(d, "charge.dispute.funds_reinstated", "evt_back", now)
    await handle.signal(DISPUTE_EVENT_SIGNAL, reinstated)
    await handle.signal(DISPUTE_EVENT_SIGNAL, reinstated)
    await close(handle, d, DisputeStatus.WON, now)
    await close(handle, d, DisputeStatus.WON, now)
    result = await handle.result()
    assert result.outcome == DisputeOutcome.WON
    assert systems.ledger.count("erp.post_journal_entry") == 2
    state = await handle.query(DisputeWorkflow.state, result_type=DisputeState)
    assert state.seen_events == ["evt_created", "evt_back", "evt_closed"]


async def test_a_lost_dispute_books_the_chargeback_and_pauses_then_resumes_the_dunning(
    env, dispute_worker, systems, dunning
):
    now = await env.get_current_time()
    d = dispute(now, invoice_id=dunning.id.removeprefix("dunning-"))
    handle = await start(env, dispute_worker, d, now)
    [opened] = await heard_by(dunning)
    assert opened.kind == PaymentEventKind.DISPUTE_OPENED and opened.dispute_id == d.dispute_id
    await close(handle, d, DisputeStatus.LOST, now)
    result = await handle.result()
    assert result.outcome == DisputeOutcome.LOST
    assert lines_of(systems.erp.entries[f"{handle.id}-chargeback"]) == {
        ("6950", usd("440.00"), None),
        ("1300", None, usd("440.00")),
    }
    heard: list[PaymentEvent] = await dunning.query(ListeningDunning.events, result_type=list[PaymentEvent])
    assert [e.kind for e in heard] == [PaymentEventKind.DISPUTE_OPENED, PaymentEventKind.DISPUTE_CLOSED]
    assert heard[1].dispute_won is False


async def test_a_lost_dispute_reverses_revenue_when_the_policy_says_so(env, dispute_worker, systems):
    now = await env.get_current_time()
    d = dispute(now)
    policy = DisputePolicy(lost_booking=LostDisputeBooking.REVENUE_REVERSAL)
    handle = await start(env, dispute_worker, d, now, policy)
    await until(handle, lambda s: s.evidence_task)
    await close(handle, d, DisputeStatus.LOST, now)
    await handle.result()
    assert ("4000", usd("440.00"), None) in lines_of(systems.erp.entries[f"{handle.id}-chargeback"])


async def test_a_lost_dispute_is_written_off_after_a_controller_approves(env, dispute_worker, systems):
    now = await env.get_current_time()
    d = dispute(now)
    handle = await start(env, dispute_worker, d, now, DisputePolicy(write_off_lost=True))
    await until(handle, lambda s: s.evidence_task)
    await close(handle, d, DisputeStatus.LOST, now)
    waiting = await until(handle, lambda s: s.status == Status.AWAITING_APPROVAL)
    assert waiting.approval.request and waiting.approval.request.required_role == ApproverRole.CONTROLLER
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            DisputeWorkflow.decide, DecisionInput(approver="fiona.finance", role=ApproverRole.FINANCE, approved=True)
        )
    await handle.execute_update(
        DisputeWorkflow.decide,
        DecisionInput(approver="carla.controller", role=ApproverRole.CONTROLLER, approved=True, comment="no evidence"),
    )
    result = await handle.result()
    assert result.outcome == DisputeOutcome.WRITTEN_OFF
    assert lines_of(systems.erp.entries[f"{handle.id}-written-off"]) == {
        ("6900", usd("440.00"), None),
        ("1300", None, usd("440.00")),
    }
    assert f"{handle.id}-chargeback" not in systems.erp.entries


async def test_the_evidence_task_is_escalated_a_day_before_it_is_due(env, dispute_worker, systems):
    now = await env.get_current_time()
    d = dispute(now)
    handle = await start(env, dispute_worker, d, now)
    await until(handle, lambda s: s.evidence_task)
    await env.sleep(timedelta(days=8, hours=12))
    assert not [t for t in systems.crm.tasks.values() if t.priority == "High"]
    await env.sleep(timedelta(days=1))
    state = await until(handle, lambda s: s.escalated_at is not None)
    assert d.evidence_due_by - state.escalated_at <= timedelta(days=1)
    assert d.evidence_due_by - state.escalated_at > timedelta(hours=23)
    [escalated] = [t for t in systems.crm.tasks.values() if t.priority == "High"]
    assert escalated.owner == "olivia.owner" and escalated.due_on == d.evidence_due_by.date()
    [notice] = [n for n in systems.notifications.outbox.values() if n.template == "dispute-evidence-due"]
    assert notice.recipient == "olivia.owner"
    await close(handle, d, DisputeStatus.LOST, now)
    assert (await handle.result()).outcome == DisputeOutcome.LOST


async def test_an_inquiry_books_nothing_until_the_funds_are_withdrawn(env, dispute_worker, systems):
    now = await env.get_current_time()
    d = dispute(now, status=DisputeStatus.WARNING_NEEDS_RESPONSE, fee=None)
    handle = await start(env, dispute_worker, d, now)
    await until(handle, lambda s: s.evidence_task)
    assert not systems.erp.entries
    escalated = d.model_copy(update={"status": DisputeStatus.NEEDS_RESPONSE})
    await handle.signal(DISPUTE_EVENT_SIGNAL, event(escalated, "charge.dispute.funds_withdrawn", "evt_w", now))
    await until(handle, lambda s: s.funds_withdrawn)
    await close(handle, escalated, DisputeStatus.LOST, now)
    assert (await handle.result()).outcome == DisputeOutcome.LOST
    assert set(systems.erp.entries) == {f"{handle.id}-withdrawn", f"{handle.id}-chargeback"}
