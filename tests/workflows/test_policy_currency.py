"""Amendments under policy amounts per currency and segregation of duties by identity, on the
time-skipping server with the real activities over fakes."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError

from canonical.approval import ApprovalPolicy
from canonical.models import ApproverRole
from canonical.money import Money
from canonical.policy_amounts import per_currency
from tests.workflows.conftest import amendment
from tests.workflows.test_amendment import decide, nothing_posted, until
from workflows.amendment import AmendmentInput, AmendmentResult, AmendmentWorkflow, amendment_workflow_id
from workflows.kit.status import Status


def in_yen(systems, price: int = 500) -> None:
    sub = systems.billing.subscriptions["sub_acme"]
    lines = [x.model_copy(update={"unit_price": Money.of(price, "JPY")}) for x in sub.lines]
    systems.billing.subscriptions["sub_acme"] = sub.model_copy(update={"currency": "JPY", "lines": lines})


async def start(env, task_queue, request, policy: ApprovalPolicy | None = None):
    return await env.client.start_workflow(
        AmendmentWorkflow.run,
        AmendmentInput(request=request, policy=policy or ApprovalPolicy()),
        id=amendment_workflow_id(request.amendment_id),
        task_queue=task_queue,
        result_type=AmendmentResult,
    )


async def test_a_twelve_thousand_yen_annual_change_needs_no_approval(env, worker, systems):
    in_yen(systems)
    # 10 -> 12 seats at 500 JPY: +1,000 a month, +12,000 a year (about 80 dollars).
    handle = await start(env, worker, amendment(quantity=12, price="500", currency="JPY"))
    result = await handle.result()
    assert result.status == Status.COMPLETED, result.message
    history = await handle.fetch_history()
    assert not [e for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes")]
    assert systems.billing.updates


async def test_a_yen_change_above_the_yen_threshold_waits_for_finance(env, worker, systems):
    in_yen(systems, price=50_000)
    # 10 -> 13 seats at 50,000 JPY: +1,800,000 a year, above 1,500,000 and below 7,500,000.
    handle = await start(env, worker, amendment(quantity=13, price="50000", currency="JPY"))
    waiting = await until(handle, Status.AWAITING_APPROVAL)
    assert waiting.approval.request.required_role == ApproverRole.FINANCE
    assert waiting.approval.request.reasons == ["annual value change 1,800,000 JPY above 1,500,000 JPY"]
    await decide(handle, "fiona.finance", ApproverRole.FINANCE)
    assert (await handle.result()).status == Status.COMPLETED


async def test_a_workflow_given_a_policy_without_its_currency_stops_before_any_change(env, worker, systems):
    in_yen(systems)
    euro_only = ApprovalPolicy(finance_thresholds=per_currency(EUR=9000), controller_thresholds=per_currency(EUR=45000))
    handle = await start(env, worker, amendment(quantity=12, price="500", currency="JPY"), euro_only)
    result = await handle.result()
    assert result.status == Status.REJECTED
    assert "the finance approval threshold is not stated in JPY (the policy covers EUR)" in result.message
    assert nothing_posted(systems)


async def test_the_requester_cannot_approve_under_another_spelling(env, worker, systems):
    handle = await start(env, worker, amendment(quantity=30, requested_by="Fiona.Finance "))  # +12,000 USD a year
    await until(handle, Status.AWAITING_APPROVAL)
    for spelling in ("fiona.finance", " FIONA.FINANCE", "Fiona.Finance"):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await decide(handle, spelling, ApproverRole.FINANCE)
        assert "requested this change and cannot approve it" in str(refused.value.cause)
    # Another person, however their name is typed, may.
    assert await decide(handle, "Frank.Finance", ApproverRole.FINANCE) == "approved"
    result = await handle.result()
    assert result.status == Status.COMPLETED


async def test_a_stranger_is_refused_whatever_the_case(env, worker, systems):
    handle = await start(env, worker, amendment(quantity=30))
    await until(handle, Status.AWAITING_APPROVAL)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await decide(handle, "Mallory", ApproverRole.FINANCE)
    assert "not a known approver" in str(refused.value.cause)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
