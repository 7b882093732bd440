"""RenewalWorkflow over a year of time-skipping, with the real activities over fakes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from adapters.errors import BusinessError
from canonical.models import ApproverRole, LegalEntity
from canonical.renewal import RenewalChange, RenewalRequest, RenewedLine
from tests.fakes import usd
from workflows.kit.approval import DecisionInput
from workflows.kit.status import Status
from workflows.renewal import (
    NonRenewal,
    RenewalInput,
    RenewalOutcome,
    RenewalResult,
    RenewalState,
    RenewalWorkflow,
    renewal_workflow_id,
)

ENTITIES = [
    LegalEntity(code="US01", company_code="US01", functional_currency="USD", erp_subsidiary="1"),
    LegalEntity(
        code="US02", company_code="US02", functional_currency="USD", erp_subsidiary="2", billing_account="acct_us02"
    ),
]


def renewal(systems, today: date, **overrides) -> RenewalRequest:
    start = today + timedelta(days=120)
    fields = dict(
        contract_id=systems.contract_id,
        subscription_id="sub_acme",
        account_id="cus_acme",
        term=str(start.year + 1),
        new_term_start=start,
        new_term_end=start.replace(year=start.year + 1),
        uplift_percent=Decimal(5),
        lines=[RenewedLine(product="seats", quantity=12)],
        requested_by="sam.sales",
    )
    fields.update(overrides)
    return RenewalRequest(**fields)


async def start(env, task_queue, request, **input_fields) -> WorkflowHandle:
    return await env.client.start_workflow(
        RenewalWorkflow.run,
        RenewalInput(request=request, legal_entities=ENTITIES, **input_fields),
        id=renewal_workflow_id(request.contract_id, request.new_term_start),
        task_queue=task_queue,
        result_type=RenewalResult,
    )


async def state(handle) -> RenewalState:
    return await handle.query(RenewalWorkflow.state, result_type=RenewalState)


async def until_waiting(handle) -> RenewalState:
    for _ in range(1200):  # generous: the CI machine may be busy
        current = await state(handle)
        if current.stage.startswith("waiting"):
            return current
        await asyncio.sleep(0.025)
    raise AssertionError(f"never waited: {current.status} {current.stage}")


def nothing_posted(s) -> bool:
    return not (s.billing.invoices or s.billing.created or s.erp.entries or s.schedules.schedules or s.tax.documents)


async def test_waits_four_months_then_starts_the_new_term(env, worker, renewing, today):
    s = renewing
    request = renewal(s, today)
    handle = await start(env, worker, request)
    waiting = await until_waiting(handle)
    assert waiting.term_value == usd("7560.00")  # 12 seats x 52.50 (5 % uplift) x 12 months
    assert s.billing.ends == {"sub_acme": request.new_term_start}  # no double billing
    assert nothing_posted(s)
    result = await handle.result()

    assert result.outcome == RenewalOutcome.RENEWED, result.message
    [new_term] = s.billing.created.values()
    assert (new_term.term_start, new_term.term_end) == (request.new_term_start, request.new_term_end)
    assert [(x.quantity, x.unit_price) for x in new_term.lines] == [(12, usd("52.50"))]
    [invoice] = s.billing.invoices.values()
    assert invoice.total == usd("693.00")  # first month 630.00 + 10 % tax
    [document] = s.tax.documents.values()
    assert document.code == invoice.id and document.status == "Committed"
    [entry] = s.erp.entries.values()
    assert entry.total_debits == usd("693.00") and entry.posting_date == request.new_term_start
    [schedule] = s.schedules.schedules.values()
    assert schedule.total == usd("7560.00") and sum(x.amount.amount for x in schedule.lines) == Decimal("7560.00")
    assert schedule.lines[0].start == request.new_term_start
    assert s.entitlements.seats[("cus_acme", "seats")] == 12
    [task] = s.crm.tasks.values()
    assert task.subject.startswith("Expansion")
    sent = sorted(k.rsplit("/", 1)[1] for k in s.notifications.outbox)
    assert sent == ["renewal-confirmation", "renewal-notice-30", "renewal-notice-60"]
    calls = s.ledger.calls
    assert calls.index("entitlements.set_seats") > calls.index("erp.post_journal_entry")


async def test_a_cancellation_while_waiting_posts_nothing(env, worker, renewing, today):
    s = renewing
    handle = await start(env, worker, renewal(s, today))
    await until_waiting(handle)
    await env.sleep(timedelta(days=70))  # past the 60-day notice
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(RenewalWorkflow.cancel, NonRenewal(requested_by="sam.sales", reason=" "))
    await handle.execute_update(
        RenewalWorkflow.cancel, NonRenewal(requested_by="sam.sales", reason="customer chose a competitor")
    )
    result = await handle.result()
    assert result.outcome == RenewalOutcome.NOT_RENEWED and "competitor" in result.message
    assert nothing_posted(s) and "sub_acme" in s.billing.ends  # the current term still ends
    assert [k.rsplit("/", 1)[1] for k in s.notifications.outbox] == ["renewal-notice-60"]


async def test_a_seat_change_before_the_start_is_priced_in(env, worker, renewing, today):
    s = renewing
    handle = await start(env, worker, renewal(s, today))
    await until_waiting(handle)
    await env.sleep(timedelta(days=30))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            RenewalWorkflow.change,
            RenewalChange(lines=[RenewedLine(product="seats", quantity=-1)], requested_by="sam.sales"),
        )
    assert "below zero" in str(refused.value.cause)
    answer = await handle.execute_update(
        RenewalWorkflow.change,
        RenewalChange(lines=[RenewedLine(product="seats", quantity=15)], requested_by="sam.sales"),
    )
    assert "9,450.00 USD" in answer  # 15 x 52.50 x 12
    result = await handle.result()
    assert result.outcome == RenewalOutcome.RENEWED and result.term_value == usd("9450.00")
    assert s.entitlements.seats[("cus_acme", "seats")] == 15
    assert [x.quantity for x in next(iter(s.billing.created.values())).lines] == [15]


@pytest.mark.parametrize("approved", [True, False])
async def test_uplift_above_the_cap_needs_approval(env, worker, renewing, today, approved):
    s = renewing
    handle = await start(env, worker, renewal(s, today, uplift_percent=Decimal(10)))
    for _ in range(1200):  # generous: the CI machine may be busy
        if (await state(handle)).status == Status.AWAITING_APPROVAL:
            break
        await asyncio.sleep(0.025)
    waiting = await state(handle)
    assert "uplift 10% above the 7% cap" in waiting.approval.request.reasons[0]
    await handle.execute_update(
        RenewalWorkflow.decide,
        DecisionInput(
            approver="fiona.finance",
            role=ApproverRole.FINANCE,
            approved=approved,
            comment="" if approved else "cap is contractual",
        ),
    )
    result = await handle.result()
    if approved:
        assert result.outcome == RenewalOutcome.RENEWED and result.term_value == usd("7920.00")  # 12 x 55.00 x 12
    else:
        assert result.outcome == RenewalOutcome.REJECTED and nothing_posted(s) and not s.billing.ends


async def test_moving_to_another_legal_entity(env, worker, renewing, today):
    s = renewing
    result = await (await start(env, worker, renewal(s, today, legal_entity="US02"))).result()
    assert result.outcome == RenewalOutcome.RENEWED, result.message
    assert s.ledger.count("billing.create_customer") == 1
    assert s.erp.customers == {"cus_acme@acct_us02": "2"}
    [new_term] = s.billing.created.values()
    assert new_term.account_id == "cus_acme@acct_us02"
    [entry] = s.erp.entries.values()
    assert entry.subsidiary == "2"
    assert "sub_acme" in s.billing.ends  # the old entity stops billing at the boundary
    assert next(iter(s.crm.tasks.values())).subject.startswith("Onboarding")


async def test_a_failure_on_the_start_day_rolls_back(env, worker, renewing, today):
    s = renewing
    s.ledger.fail("erp.post_journal_entry", BusinessError("netsuite", "Invalid account 1200", code="INVALID_KEY"))
    result = await (await start(env, worker, renewal(s, today))).result()
    assert result.outcome == RenewalOutcome.ROLLED_BACK and "Invalid account" in result.message
    assert result.compensated == ["journal entry", "tax document", "invoice", "new term", "current term end"]
    assert [i.status for i in s.billing.invoices.values()] == ["void"]
    assert [d.status for d in s.tax.documents.values()] == ["Cancelled"]
    assert [x.status for x in s.billing.subscriptions.values() if x.id != "sub_acme"] == ["canceled"]
    assert not s.billing.ends and not s.schedules.schedules and not s.erp.entries


async def test_an_invalid_renewal_is_refused_before_anything_happens(env, worker, renewing, today):
    s = renewing
    result = await (
        await start(
            env,
            worker,
            renewal(
                s, today, new_term_start=today + timedelta(days=100), lines=[RenewedLine(product="gold", quantity=1)]
            ),
        )
    ).result()
    assert result.outcome == RenewalOutcome.REJECTED
    assert "must start when the current one ends" in result.message and "not in the price book" in result.message
    assert nothing_posted(s) and not s.billing.ends


async def test_a_change_to_the_rest_of_the_current_term_is_a_child_amendment(env, worker, renewing, today):
    from canonical.models import AmendedLine
    from workflows.amendment import AmendmentResult as ChildResult

    s = renewing
    request = renewal(
        s, today, current_term_changes=[AmendedLine(product="seats", quantity=11, unit_price=Decimal("50.00"))]
    )
    handle = await start(env, worker, request)
    await until_waiting(handle)
    child = env.client.get_workflow_handle(
        f"amendment-{request.contract_id}-{request.term}-current", result_type=ChildResult
    )
    assert (await child.result()).status == Status.COMPLETED
    assert [x.quantity for x in s.billing.subscriptions["sub_acme"].lines] == [11]  # the current term, now
    assert len(s.billing.invoices) == 1  # the proration invoice; the new term's comes on its first day
    result = await handle.result()
    assert result.outcome == RenewalOutcome.RENEWED and len(s.billing.invoices) == 2


async def test_the_renewal_window_starts_each_renewal_once(env, worker, renewing, today):
    from canonical.renewal import RenewalPolicy
    from workflows.renewal_window import RenewalWindowWorkflow, WindowInput, WindowResult

    s = renewing
    far = s.billing.subscriptions["sub_acme"].model_copy(
        update={"id": "sub_far", "contract_id": "C-far", "term_end": today + timedelta(days=200)}
    )
    s.billing.subscriptions["sub_far"] = far
    policy = RenewalPolicy(window_days=150)
    runs = []
    for _n in range(2):
        runs.append(
            await env.client.execute_workflow(
                RenewalWindowWorkflow.run,
                WindowInput(policy=policy, legal_entities=ENTITIES),
                id=f"renewal-window-{uuid.uuid4().hex[:6]}",
                task_queue=worker,
                result_type=WindowResult,
            )
        )
    expected = renewal_workflow_id(s.contract_id, today + timedelta(days=120))
    assert runs[0].started == [expected] and runs[1].started == [] and runs[1].already_running == [expected]
    renewal_handle = env.client.get_workflow_handle(expected)
    current = await renewal_handle.query(RenewalWorkflow.state, result_type=RenewalState)
    assert current.status in (Status.RUNNING, Status.AWAITING_APPROVAL) and current.term_value == usd("6000.00")
    await renewal_handle.terminate()


async def test_the_renewal_window_leaves_a_subscription_whose_contract_id_breaks_the_id_rule(
    env, worker, renewing, today
):
    """Billing lists it, but its contract id cannot be a renewal's business key: the window
    says so in its result and starts the others."""
    from canonical.renewal import RenewalPolicy
    from workflows.renewal_window import RenewalWindowWorkflow, WindowInput, WindowResult

    s = renewing
    odd = s.billing.subscriptions["sub_acme"].model_copy(update={"id": "sub_odd", "contract_id": "C 7\r\n"})
    s.billing.subscriptions["sub_odd"] = odd
    result = await env.client.execute_workflow(
        RenewalWindowWorkflow.run,
        WindowInput(policy=RenewalPolicy(window_days=150), legal_entities=ENTITIES),
        id=f"renewal-window-{uuid.uuid4().hex[:6]}",
        task_queue=worker,
        result_type=WindowResult,
    )
    expected = renewal_workflow_id(s.contract_id, today + timedelta(days=120))
    assert result.started == [expected]
    assert len(result.refused) == 1 and "'sub_odd': its contract id contains U+0020 a space" in result.refused[0]
    await env.client.get_workflow_handle(expected).terminate()
