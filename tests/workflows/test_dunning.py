"""DunningWorkflow over 30 days of time-skipping, with the real activities over fakes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError

from canonical.models import (
    ApproverRole,
    Invoice,
    PaymentEvent,
    PaymentEventKind,
)
from starter.client import deliver_payment_event
from tests.fakes import usd
from workflows.dunning import (
    PAYMENT_EVENT_SIGNAL,
    DunningOutcome,
    DunningResult,
    DunningState,
    DunningWorkflow,
    dunning_workflow_id,
)
from workflows.kit.approval import DecisionInput
from workflows.kit.status import Status


@pytest.fixture
def invoice_id() -> str:
    return f"in_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def dunning_systems(systems, invoice_id):
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
    return systems


class Dunning:
    """Drives one dunning: payment events in, state out, time skipped by the test server."""

    def __init__(self, env, task_queue: str, invoice_id: str):
        self.env, self.task_queue, self.invoice_id, self.sent = env, task_queue, invoice_id, 0
        self.handle = env.client.get_workflow_handle(dunning_workflow_id(invoice_id), result_type=DunningResult)

    async def event(self, kind: PaymentEventKind, event_id: str | None = None, **fields) -> None:
        self.sent += 1
        event = PaymentEvent(
            event_id=event_id or f"evt_{self.sent}",
            kind=kind,
            occurred_at=await self.now(),
            invoice_id=self.invoice_id,
            account_id="cus_acme",
            subscription_id="sub_acme",
            **fields,
        )
        if kind == PaymentEventKind.PAYMENT_METHOD_UPDATED:
            # Routing by customer needs visibility queries, which the time-skipping server
            # lacks (the integration tests cover it): signal the workflow directly.
            await self.handle.signal(PAYMENT_EVENT_SIGNAL, event)
        else:
            await deliver_payment_event(self.env.client, event, task_queue=self.task_queue)

    async def now(self):
        from datetime import datetime

        return datetime.fromtimestamp((await self.env.get_current_time()).timestamp(), UTC)

    async def days(self, n: float) -> None:
        await self.env.sleep(timedelta(days=n))

    async def result(self) -> DunningResult:
        """Skip time a day at a time until the dunning ends. (Only handles from start_workflow
        skip time by themselves while awaiting a result; this one comes from the ingress.)"""
        for _ in range(60):
            if (await self.handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                break
            await self.env.sleep(timedelta(days=1))
        return await self.handle.result()

    async def state(self) -> DunningState:
        return await self.handle.query(DunningWorkflow.state, result_type=DunningState)

    async def until(self, status: Status) -> DunningState:
        for _ in range(1200):  # generous: the CI machine may be busy
            current = await self.state()
            if current.status == status:
                return current
            await asyncio.sleep(0.025)
        raise AssertionError(f"never reached {status}: {current.stage}")

    async def decide(self, approver: str, role: ApproverRole, approved: bool = True) -> None:
        await self.handle.execute_update(
            DunningWorkflow.decide,
            DecisionInput(approver=approver, role=role, approved=approved, comment="" if approved else "not yet"),
        )


@pytest.fixture
async def dunning(env, worker, dunning_systems, invoice_id):
    d = Dunning(env, worker, invoice_id)
    await d.event(PaymentEventKind.PAYMENT_FAILED, decline_code="insufficient_funds", amount_remaining=usd("500.00"))
    return d


async def test_thirty_days_from_failed_payment_to_write_off(dunning, dunning_systems):
    s = dunning_systems
    await dunning.days(21.2)
    waiting = await dunning.until(Status.AWAITING_APPROVAL)
    assert waiting.approval.request.required_role == ApproverRole.FINANCE
    await dunning.decide("fiona.finance", ApproverRole.FINANCE)
    await dunning.days(9)
    await dunning.until(Status.AWAITING_APPROVAL)
    await dunning.decide("carla.controller", ApproverRole.CONTROLLER)
    result = await dunning.result()

    assert result.outcome == DunningOutcome.WRITTEN_OFF and result.balance == usd("500.00")
    assert s.ledger.count("billing.retry_payment") == 5  # days 1, 3, 5, 7 and 14
    assert sorted(s.notifications.outbox) == [f"{dunning.handle.id}/notice-day-{d}" for d in (0, 14, 3, 7)]
    subjects = [n.subject for n in s.notifications.outbox.values()]
    assert subjects[0].startswith("Your payment") and subjects[-1].startswith("Final notice")
    assert s.entitlements.restricted["cus_acme"] is True
    assert s.billing.subscriptions["sub_acme"].status == "canceled"
    assert s.billing.invoices[dunning.invoice_id].status == "uncollectible"
    [entry] = s.erp.entries.values()
    assert {(x.account, x.debit, x.credit) for x in entry.lines} == {
        ("6900", usd("500.00"), None),
        ("1200", None, usd("500.00")),
    }
    [case] = s.erp.cases.values()
    assert case.stage == "written off" and case.status == "closed"
    assert s.crm.flags[("cus_acme", "dunning")] is True
    assert (
        s.ledger.count("erp.upsert_collection_case") == 6
    )  # reminder, escalated, final, restricted, write-off, closed


async def test_payment_on_day_4_stops_every_later_retry_and_notice(dunning, dunning_systems):
    s = dunning_systems
    await dunning.days(4)
    assert s.ledger.count("billing.retry_payment") == 2
    s.billing.pay(dunning.invoice_id, usd("500.00"))
    await dunning.event(PaymentEventKind.PAID, amount_remaining=usd("0.00"))
    result = await dunning.result()

    assert result.outcome == DunningOutcome.CASH
    assert s.ledger.count("billing.retry_payment") == 2
    assert [k.rsplit("/", 1)[1] for k in s.notifications.outbox] == ["notice-day-0", "notice-day-3", "thanks"]
    [case] = s.erp.cases.values()
    assert (case.stage, case.status) == ("paid", "closed")
    assert s.crm.flags[("cus_acme", "dunning")] is False
    assert "cus_acme" not in s.entitlements.restricted and not s.erp.entries


async def test_a_hard_decline_waits_for_a_new_payment_method(env, worker, dunning_systems, invoice_id):
    s = dunning_systems
    s.billing.card_outcomes = ["lost_card"]
    d = Dunning(env, worker, invoice_id)
    await d.event(PaymentEventKind.PAYMENT_FAILED, decline_code="insufficient_funds")
    await d.days(9)
    state = await d.state()
    assert state.hard_declined and [a.decline_code for a in state.attempts] == ["lost_card"]
    assert s.ledger.count("billing.retry_payment") == 1  # days 3, 5 and 7 were not tried
    s.billing.card_outcomes = [""]
    await d.event(PaymentEventKind.PAYMENT_METHOD_UPDATED)
    result = await d.result()
    assert result.outcome == DunningOutcome.CASH and result.attempts == 2


async def test_a_dispute_pauses_the_calendar_until_it_closes(dunning, dunning_systems):
    s = dunning_systems
    await dunning.days(2)
    await dunning.event(PaymentEventKind.DISPUTE_OPENED, dispute_id="dp_1")
    await dunning.days(10)
    paused = await dunning.state()
    assert paused.paused and 1.9 < paused.day < 2.1
    assert s.ledger.count("billing.retry_payment") == 1 and len(s.notifications.outbox) == 1
    await dunning.event(PaymentEventKind.DISPUTE_CLOSED, dispute_id="dp_1", dispute_won=True)
    await dunning.days(1.5)  # day 3.5 of the shifted calendar: the day-3 retry and notice are done
    resumed = await dunning.state()
    assert not resumed.paused and 3.0 <= resumed.day < 3.6  # as of the workflow's last step
    assert s.ledger.count("billing.retry_payment") == 2 and len(s.notifications.outbox) == 2
    s.billing.pay(dunning.invoice_id, usd("500.00"))
    await dunning.event(PaymentEventKind.PAID)
    assert (await dunning.result()).outcome == DunningOutcome.CASH


async def test_a_partial_payment_continues_on_the_rest(dunning, dunning_systems):
    s = dunning_systems
    await dunning.days(2)
    s.billing.pay(dunning.invoice_id, usd("300.00"))  # a bank transfer
    await dunning.event(PaymentEventKind.BALANCE_CHANGED, amount_remaining=usd("200.00"))
    assert (await dunning.state()).balance == usd("200.00")
    s.billing.card_outcomes = [""]
    result = await dunning.result()  # the day-3 retry collects the rest
    assert result.outcome == DunningOutcome.CASH
    last = (await dunning.state()).attempts[-1]
    assert last.amount_paid == usd("500.00") and last.amount_remaining == usd("0.00")


async def test_refused_restriction_and_write_off_cancel_without_writing_off(dunning, dunning_systems):
    s = dunning_systems
    await dunning.days(21.2)
    await dunning.until(Status.AWAITING_APPROVAL)
    await dunning.decide("fiona.finance", ApproverRole.FINANCE, approved=False)
    await dunning.days(9)
    await dunning.until(Status.AWAITING_APPROVAL)
    await dunning.decide("carla.controller", ApproverRole.CONTROLLER, approved=False)
    result = await dunning.result()

    assert result.outcome == DunningOutcome.CANCELLED
    assert "cus_acme" not in s.entitlements.restricted
    assert s.billing.subscriptions["sub_acme"].status == "canceled"
    assert s.billing.invoices[dunning.invoice_id].status == "open" and not s.erp.entries
    state = await dunning.state()
    assert not state.restriction_decision.approved and not state.write_off_decision.approved


async def test_strategic_accounts_alert_their_owner_and_need_a_controller(env, worker, dunning_systems, invoice_id):
    s = dunning_systems
    s.billing.accounts["cus_acme"] = s.billing.accounts["cus_acme"].model_copy(
        update={"annual_recurring_revenue": usd("250000.00"), "success_owner": "casey.success"}
    )
    d = Dunning(env, worker, invoice_id)
    await d.event(PaymentEventKind.PAYMENT_FAILED)
    await d.days(21.2)
    await d.until(Status.AWAITING_APPROVAL)
    [task] = s.crm.tasks.values()
    assert task.owner == "casey.success" and invoice_id in task.subject
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await d.decide("fiona.finance", ApproverRole.FINANCE)
    assert "needs a controller" in str(refused.value.cause)
    s.billing.pay(invoice_id, usd("500.00"))
    await d.event(PaymentEventKind.PAID)  # paying withdraws the question
    assert (await d.result()).outcome == DunningOutcome.CASH
    assert (await d.state()).approval.request is not None and not s.entitlements.restricted


async def test_the_same_webhook_five_times_is_one_dunning_with_one_notice(env, worker, dunning_systems, invoice_id):
    s = dunning_systems
    d = Dunning(env, worker, invoice_id)
    for _ in range(5):
        await d.event(PaymentEventKind.PAYMENT_FAILED, event_id="evt_same", amount_remaining=usd("500.00"))
    await d.days(0.5)
    assert len(s.notifications.outbox) == 1
    s.billing.pay(invoice_id, usd("500.00"))
    await d.event(PaymentEventKind.PAID)
    assert (await d.result()).outcome == DunningOutcome.CASH
    history = await d.handle.fetch_history()
    starts = [e for e in history.events if e.HasField("workflow_execution_started_event_attributes")]
    assert len(starts) == 1


def test_hard_declines_are_the_ones_a_retry_cannot_cure():
    from canonical.dunning import is_hard_decline

    assert is_hard_decline("lost_card") and is_hard_decline("expired_card")
    assert not is_hard_decline("insufficient_funds") and not is_hard_decline("")


async def test_a_continued_dunning_resumes_from_what_it_carried(env, worker, dunning_systems, invoice_id):
    """What continue-as-new hands over: day 0, the actions done, the events seen."""
    from datetime import datetime

    from workflows.dunning import DunningInput, DunningProgress

    s = dunning_systems
    now = datetime.fromtimestamp((await env.get_current_time()).timestamp(), UTC)
    carried = DunningProgress(
        anchor=now - timedelta(days=8),
        balance=usd("500.00"),
        case_stage="escalated",
        seen_events=["evt_old"],
        attempted_at=[now - timedelta(days=d) for d in (7, 5, 3, 1)],
        done=[
            "opened@0",
            *(
                f"{a}@{d}"
                for d, a in [
                    (0, "notice"),
                    (1, "retry"),
                    (3, "retry"),
                    (3, "notice"),
                    (5, "retry"),
                    (7, "retry"),
                    (7, "notice"),
                ]
            ),
        ],
    )
    handle = await env.client.start_workflow(
        DunningWorkflow.run,
        DunningInput(invoice_id=invoice_id, account_id="cus_acme", subscription_id="sub_acme", carried=carried),
        id=dunning_workflow_id(invoice_id),
        task_queue=worker,
    )
    await env.sleep(timedelta(days=6.5))  # day 14.5: only the day-14 retry and notice are due
    assert s.ledger.count("billing.retry_payment") == 1
    assert [k.rsplit("/", 1)[1] for k in s.notifications.outbox] == ["notice-day-14"]
    assert s.ledger.count("crm.flag_account") == 0  # day 0 was done before
    await handle.signal(
        PAYMENT_EVENT_SIGNAL, PaymentEvent(event_id="evt_old", kind=PaymentEventKind.PAID, occurred_at=now)
    )  # seen before: ignored
    assert (await handle.query(DunningWorkflow.state, result_type=DunningState)).outcome != DunningOutcome.CASH
    await handle.terminate()


def test_card_networks_limit_attempts_per_30_days():
    from datetime import datetime

    from canonical.dunning import within_network_limit

    now = datetime(2026, 11, 30, tzinfo=UTC)
    recent = [now - timedelta(days=d) for d in range(14)]
    assert not within_network_limit([*recent, now - timedelta(days=20)], now, 15)
    assert within_network_limit([*recent, now - timedelta(days=31)], now, 15)
