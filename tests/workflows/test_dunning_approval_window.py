"""A dunning's approvals wait a person's time: on a calendar of one-second days the
restriction still waits for its approver after the 7 seconds that used to expire it, and only
a window set short on purpose expires within the calendar."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from canonical.approval import ApprovalPolicy
from canonical.dunning import DunningPolicies, DunningPolicy
from canonical.models import ApproverRole, Invoice, PaymentEvent, PaymentEventKind
from starter.client import deliver_payment_event
from tests.fakes import usd
from workflows.dunning import DunningOutcome, DunningResult, DunningState, DunningWorkflow, dunning_workflow_id
from workflows.kit.approval import DecisionInput
from workflows.kit.status import Status

SECOND_DAYS = DunningPolicies(default=DunningPolicy(day=timedelta(seconds=1)))


@pytest.fixture
def invoice_id(systems) -> str:
    invoice_id = f"in_{uuid.uuid4().hex[:10]}"
    systems.billing.invoices[invoice_id] = Invoice(
        id=invoice_id,
        account_id="cus_acme",
        subscription_id="sub_acme",
        status="open",
        currency="USD",
        total=usd("500.00"),
        amount_paid=usd("0.00"),
        amount_remaining=usd("500.00"),
    )
    return invoice_id


async def start(env, task_queue: str, invoice_id: str, approvals: ApprovalPolicy | None = None):
    now = await env.get_current_time()
    event = PaymentEvent(
        event_id="evt_1",
        kind=PaymentEventKind.PAYMENT_FAILED,
        occurred_at=now,
        invoice_id=invoice_id,
        account_id="cus_acme",
        subscription_id="sub_acme",
        decline_code="insufficient_funds",
        amount_remaining=usd("500.00"),
    )
    await deliver_payment_event(env.client, event, task_queue=task_queue, policies=SECOND_DAYS, approvals=approvals)
    return env.client.get_workflow_handle(dunning_workflow_id(invoice_id), result_type=DunningResult)


async def state_of(handle) -> DunningState:
    return await handle.query(DunningWorkflow.state, result_type=DunningState)


async def asked(handle, what: str) -> DunningState:
    """The state once the approval gate asks about `what` (restrict, write off)."""
    for _ in range(1200):
        state = await state_of(handle)
        request = state.approval.request
        if state.status == Status.AWAITING_APPROVAL and request and what in request.reasons[0]:
            return state
        await asyncio.sleep(0.025)
    raise AssertionError(f"never asked to {what}: {state.stage}")


async def ended(env, handle) -> DunningResult:
    for _ in range(60):
        state = await state_of(handle)
        if state.outcome != DunningOutcome.OPEN:
            break
        await env.sleep(timedelta(minutes=1))
    return await handle.result()


async def test_a_restriction_waits_real_hours_on_a_one_second_day(env, worker, systems, invoice_id):
    handle = await start(env, worker, invoice_id)  # the approval policy of the settings: 72 hours, 7 days
    await env.sleep(timedelta(seconds=21.5))
    waiting = await asked(handle, "restrict service")
    await env.sleep(timedelta(seconds=10))  # day 31.5: runs before o2c-console had expired it at 7 s

    state = await state_of(handle)
    assert state.status == Status.AWAITING_APPROVAL and "restrict service" in state.approval.request.reasons[0]
    assert state.approval.expired_at is None and state.restriction_decision is None
    requested = waiting.approval.request.requested_at
    assert state.approval.escalates_at - requested == timedelta(hours=72)
    assert state.approval.expires_at - requested == timedelta(days=7)
    assert not state.cancelled  # day 30 has not come for the calendar: it waits for the approver

    await env.sleep(timedelta(hours=72))
    escalated = await state_of(handle)
    assert escalated.approval.escalated_at is not None and escalated.approval.expired_at is None
    assert f"{handle.id}/escalation-restrict-service" in systems.notifications.outbox

    await handle.execute_update(
        DunningWorkflow.decide, DecisionInput(approver="fiona.finance", role=ApproverRole.FINANCE, approved=True)
    )
    await asked(handle, "write off")
    await handle.execute_update(
        DunningWorkflow.decide,
        DecisionInput(approver="carla.controller", role=ApproverRole.CONTROLLER, approved=True),
    )
    result = await ended(env, handle)
    assert result.outcome == DunningOutcome.WRITTEN_OFF and result.balance == usd("500.00")
    assert systems.entitlements.restricted["cus_acme"] is True
    assert systems.billing.subscriptions["sub_acme"].status == "canceled"
    [entry] = systems.erp.entries.values()
    assert sum((x.debit.amount for x in entry.lines if x.debit), start=0) == usd("500.00").amount


async def test_a_short_window_set_in_the_settings_expires(env, worker, systems, invoice_id, monkeypatch):
    monkeypatch.setenv("O2C_APPROVAL_ESCALATE_AFTER_SECONDS", "3")
    monkeypatch.setenv("O2C_APPROVAL_EXPIRE_AFTER_SECONDS", "6")
    handle = await start(env, worker, invoice_id)  # no policy passed: the settings' windows
    await env.sleep(timedelta(seconds=21.5))
    waiting = await asked(handle, "restrict service")
    requested = waiting.approval.request.requested_at
    assert waiting.approval.expires_at - requested == timedelta(seconds=6)

    result = await ended(env, handle)  # nobody answers either question
    assert result.outcome == DunningOutcome.CANCELLED
    state = await state_of(handle)
    assert state.restriction_decision is None and state.write_off_decision is None
    assert "cus_acme" not in systems.entitlements.restricted and not systems.erp.entries
    assert systems.billing.subscriptions["sub_acme"].status == "canceled"
    assert systems.billing.invoices[invoice_id].status == "open"
    # Each question was escalated before it expired.
    assert {f"{handle.id}/escalation-restrict-service", f"{handle.id}/escalation-write-off-the-balance"} <= set(
        systems.notifications.outbox
    )
    texts = [e.text for e in state.events]
    assert "running: restrict service: no answer in time" in texts
    assert "running: write off the balance: no answer in time" in texts
