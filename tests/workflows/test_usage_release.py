"""UsageReleaseWorkflow and the period close on the time-skipping server, with the real
activities over the in-memory billing, meters, tax, ERP and usage store."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from adapters.errors import BusinessError, IntegrationBug
from adapters.temporal import register_search_attributes
from canonical.approval import ApprovalPolicy
from canonical.models import ApproverRole
from canonical.policy_amounts import per_currency
from canonical.usage.models import Meter, MeterReport, ReviewAction, UsageDecision, UsagePolicy
from starter.binaries import test_server_binary
from starter.client import adjust_usage, start_usage_release
from tests.fakes import usd
from tests.workflows.usage_world import API_CALLS, PERIOD, metered_customer, release_input, usage_world
from workflows.kit.approval import DecisionInput
from workflows.kit.attention import OperatorAction, ResolveInput
from workflows.kit.status import SEARCH_ATTRIBUTES, Status
from workflows.usage import (
    UsageOutcome,
    UsageReleaseWorkflow,
    UsageResult,
    UsageState,
    report_identifier,
    usage_workflow_id,
)
from workflows.usage_close import UsageCloseInput, UsageCloseResult, UsagePeriodCloseWorkflow

IN_PERIOD = datetime(2026, 10, 20, tzinfo=UTC)


# These tests skip days of time on purpose. On the session's shared time-skipping server every
# workflow other modules left waiting (with no worker left to answer it) would wake up in that
# time too; a server of their own skips only theirs.
@pytest.fixture(scope="module")
async def env():
    environment = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=test_server_binary()
    )
    await register_search_attributes(environment.client, "default", SEARCH_ATTRIBUTES)
    yield environment
    await environment.shutdown()


# The releases the current test started: a release left waiting keeps firing its timers (draft
# polls, re-checks, escalations) into every later test's skipped time.
STARTED: list[WorkflowHandle] = []


@pytest.fixture(autouse=True)
async def nothing_left_running():
    yield
    while STARTED:
        with contextlib.suppress(RPCError):  # most have finished
            await STARTED.pop().terminate(reason="the test is over")


async def start(env, task_queue, subscription_id, **fields) -> WorkflowHandle:
    handle = await env.client.start_workflow(
        UsageReleaseWorkflow.run,
        release_input(subscription_id, **fields),
        id=usage_workflow_id(subscription_id, PERIOD),
        task_queue=task_queue,
        result_type=UsageResult,
    )
    STARTED.append(handle)
    return handle


async def state(handle) -> UsageState:
    return await handle.query(UsageReleaseWorkflow.state, result_type=UsageState)


async def until(handle, status: Status) -> UsageState:
    for _ in range(1200):  # generous: the machine may be busy
        current = await state(handle)
        if current.status == status:
            return current
        await asyncio.sleep(0.025)
    raise AssertionError(f"never reached {status}; last {current.status}: {current.stage}")


async def decide(handle, approver: str, role: ApproverRole, approved: bool = True, comment: str = "ok") -> str:
    return await handle.execute_update(
        UsageReleaseWorkflow.decide, DecisionInput(approver=approver, role=role, approved=approved, comment=comment)
    )


def reported(systems) -> dict[str, int]:
    return {identifier: event.value for identifier, event in systems.metering.events.items()}


def nothing_booked(s) -> bool:
    released = any(r.period == PERIOD for r in s.usage.released.values())
    return not (s.erp.entries or s.schedules.schedules or s.tax.documents or released)


async def test_an_ordinary_month_is_released_without_a_person(env, worker, systems):
    s = systems
    subscription = usage_world(s, 10_000)
    handle = await start(env, worker, subscription)
    result = await handle.result()

    assert (result.status, result.outcome) == (Status.COMPLETED, UsageOutcome.RELEASED), result.message
    wid = usage_workflow_id(subscription, PERIOD)
    assert reported(s) == {f"{wid}-api_calls-m1": 10_000}
    [event] = s.metering.events.values()
    assert event.timestamp.isoformat() == "2026-10-31T23:59:59+00:00"  # inside the period
    invoice = s.billing.invoices[result.invoice_id]
    assert invoice.status == "open" and invoice.id in s.metering.held
    assert [(x.meter, x.quantity, x.amount) for x in invoice.lines] == [
        ("api_calls", 10_000, usd("100.00")),
        ("", None, usd("10.00")),  # the tax line o2c added to the draft
    ]
    assert invoice.total == usd("110.00") == result.total
    assert s.tax.documents[invoice.id].status == "Committed"
    accrual, billed = (s.erp.entries[x] for x in result.journal_entries)
    assert accrual.posting_date.isoformat() == "2026-10-31" and accrual.total_debits == usd("100.00")
    assert billed.total_debits == usd("110.00") and billed.invoice_id == invoice.id
    [schedule] = s.schedules.schedules.values()
    assert sum(x.amount.amount for x in schedule.lines) == Decimal("100.00")
    release = s.usage.released[wid]
    assert (release.quantities, release.subtotal, release.tax, release.total) == (
        {"api_calls": 10_000},
        usd("100.00"),
        usd("10.00"),
        usd("110.00"),
    )
    assert ("cus_acme", PERIOD) in s.usage.closed
    [notice] = s.notifications.outbox.values()
    assert notice.recipient == "billing@acme.test" and invoice.id in notice.body
    done = await state(handle)
    assert done.approval.request is None and not done.findings and not done.decisions
    calls = s.ledger.calls
    assert calls.index("usage.hold_invoice") < calls.index("usage.finalize_invoice") < calls.index("tax.commit")
    assert calls.index("notifications.send") > calls.index("usage.record_release")


async def test_a_spike_is_held_then_approved_and_released(env, worker, systems):
    s = systems
    subscription = usage_world(s, 14_200)  # 1.42x the median of about 10,000
    handle = await start(env, worker, subscription)
    held = await until(handle, Status.AWAITING_APPROVAL)
    assert held.findings and held.approval.request is not None
    assert held.approval.request.reasons == [f.text for f in held.findings]
    assert held.approval.request.required_role == ApproverRole.FINANCE
    assert held.approval.request.requested_by == "o2c"
    assert not s.erp.entries and s.billing.invoices[held.draft_id].status == "draft"

    with pytest.raises(WorkflowUpdateFailedError):
        await decide(handle, "sam.sales", ApproverRole.FINANCE)  # not an approver
    assert await decide(handle, "fiona.finance", ApproverRole.FINANCE, comment="launch month") == "approved"
    result = await handle.result()

    assert result.outcome == UsageOutcome.RELEASED, result.message
    assert s.billing.invoices[result.invoice_id].total == usd("156.20")  # 142.00 + 10 % tax
    [decision] = (await state(handle)).decisions
    assert (decision.approver, decision.action, decision.reason) == (
        "fiona.finance",
        ReviewAction.APPROVE,
        "launch month",
    )


async def test_an_unanswered_review_escalates_expires_parks_and_asks_again(env, worker, systems):
    s = systems
    subscription = usage_world(s, 14_200)
    handle = await start(env, worker, subscription)
    await until(handle, Status.AWAITING_APPROVAL)
    await env.sleep(timedelta(days=8))  # past the 72-hour escalation and the 7-day expiry
    parked = await until(handle, Status.NEEDS_ATTENTION)
    assert parked.attention.step == "usage review" and "nobody reviewed" in parked.attention.message
    assert parked.approval.escalated_at is not None and parked.approval.expired_at is not None
    [escalation] = s.notifications.outbox.values()
    assert escalation.recipient == "approvers:finance" and "1.42" in escalation.body
    await handle.execute_update(
        UsageReleaseWorkflow.resolve, ResolveInput(action=OperatorAction.RETRY, operator="olga.ops")
    )
    asked_again = await until(handle, Status.AWAITING_APPROVAL)
    assert asked_again.approval.expired_at is None
    await decide(handle, "frank.finance", ApproverRole.FINANCE, comment="seasonal peak")
    result = await handle.result()
    assert result.outcome == UsageOutcome.RELEASED, result.message


async def test_an_adjustment_credits_the_draft_with_the_approval_its_amount_needs(env, worker, systems):
    s = systems
    subscription = usage_world(s, 14_200)
    # Above 100.00 a controller decides: the held invoice (142.00) and a credit above it alike.
    handle = await start(
        env, worker, subscription, approvals=ApprovalPolicy(controller_thresholds=per_currency(USD=100))
    )
    held = await until(handle, Status.AWAITING_APPROVAL)
    assert held.approval.request.required_role == ApproverRole.CONTROLLER

    def adjustment(approver: str, role: ApproverRole, credit: str, reason: str = "onboarding spike, agreed with CS"):
        return UsageDecision(
            approver=approver, role=role, action=ReviewAction.ADJUST, credit=usd(credit), reason=reason
        )

    wid = handle.id
    for refused, why in [
        (adjustment("fiona.finance", ApproverRole.FINANCE, "42.00"), "needs a controller"),
        (adjustment("carla.controller", ApproverRole.CONTROLLER, "42.00", reason=" "), "needs a reason"),
        (adjustment("carla.controller", ApproverRole.CONTROLLER, "142.01"), "exceeds the usage billed"),
        (adjustment("carla.controller", ApproverRole.FINANCE, "42.00"), "holds the role controller"),
    ]:
        with pytest.raises(WorkflowUpdateFailedError) as error:
            await adjust_usage(env.client, wid, refused)
        assert why in str(error.value.cause)
    answer = await adjust_usage(env.client, wid, adjustment("carla.controller", ApproverRole.CONTROLLER, "42.00"))
    assert "42.00" in answer
    result = await handle.result()

    assert result.outcome == UsageOutcome.RELEASED and result.credit == usd("42.00"), result.message
    invoice = s.billing.invoices[result.invoice_id]
    credit_line = next(x for x in invoice.lines if x.amount.is_negative)
    assert credit_line.amount == usd("-42.00") and "onboarding spike" in credit_line.description
    assert invoice.total == usd("110.00")  # (142.00 - 42.00) + 10 % tax
    release = s.usage.released[wid]
    assert (release.subtotal, release.credit, release.tax) == (usd("142.00"), usd("42.00"), usd("10.00"))
    accrual = s.erp.entries[result.journal_entries[0]]
    assert accrual.total_debits == usd("100.00")  # revenue net of the credit
    [decision] = (await state(handle)).decisions
    assert (decision.approver, decision.action, decision.credit) == (
        "carla.controller",
        ReviewAction.ADJUST,
        usd("42.00"),
    )


async def test_a_rejection_remeasures_reports_the_delta_and_reviews_again(env, worker, systems):
    s = systems
    subscription = usage_world(s, 14_200)
    handle = await start(env, worker, subscription)
    await until(handle, Status.AWAITING_APPROVAL)
    with pytest.raises(WorkflowUpdateFailedError):
        await decide(handle, "fiona.finance", ApproverRole.FINANCE, approved=False, comment="")  # why?
    # The producer sent a retry storm under new identifiers; the store is corrected, then re-measured.
    s.usage.count("cus_acme", PERIOD, "api_calls", -4_100, events=0)
    await decide(handle, "fiona.finance", ApproverRole.FINANCE, approved=False, comment="double-counted retries")
    result = await handle.result()

    assert result.outcome == UsageOutcome.RELEASED, result.message
    wid = handle.id
    assert reported(s) == {f"{wid}-api_calls-m1": 14_200, f"{wid}-api_calls-m2": -4_100}
    invoice = s.billing.invoices[result.invoice_id]
    assert invoice.lines[0].quantity == 10_100 and invoice.total == usd("111.10")
    done = await state(handle)
    assert done.measurement == 2 and [d.action for d in done.decisions] == [ReviewAction.REMEASURE]
    assert done.decisions[0].reason == "double-counted retries"


async def test_a_draft_that_never_comes_parks_and_abort_releases_nothing(env, worker, systems):
    s = systems
    subscription = usage_world(s, 10_000)
    s.metering.drafts = False
    policy = UsagePolicy(draft_poll=timedelta(minutes=15), draft_wait=timedelta(hours=2))
    handle = await start(env, worker, subscription, policy=policy)
    await env.sleep(timedelta(hours=3))
    parked = await until(handle, Status.NEEDS_ATTENTION)
    assert parked.attention.step == "usage draft" and "no draft invoice" in parked.attention.message
    assert parked.attention.actions == [OperatorAction.RETRY, OperatorAction.ABORT]
    assert 8 <= s.ledger.count("usage.find_draft") <= 10  # every 15 minutes for two hours
    await handle.execute_update(
        UsageReleaseWorkflow.resolve, ResolveInput(action=OperatorAction.ABORT, operator="olga.ops")
    )
    result = await handle.result()
    assert (result.status, result.outcome) == (Status.ROLLED_BACK, UsageOutcome.NOT_RELEASED)
    assert nothing_booked(s) and not s.billing.invoices


async def test_the_draft_ready_signal_ends_the_wait_before_the_next_poll(env, worker, systems):
    s = systems
    subscription = usage_world(s, 10_000)
    s.metering.drafts = False
    handle = await start(env, worker, subscription, policy=UsagePolicy(draft_poll=timedelta(hours=6)))
    await until(handle, Status.RUNNING)
    for _ in range(400):
        if s.ledger.count("usage.find_draft"):
            break
        await asyncio.sleep(0.025)
    draft = s.metering.make_draft(subscription, PERIOD)  # the period ends in billing
    await handle.signal(UsageReleaseWorkflow.draft_ready, draft.id)
    result = await handle.result()
    assert result.outcome == UsageOutcome.RELEASED and result.invoice_id == draft.id
    assert s.ledger.count("usage.find_draft") >= 2


async def test_a_draft_made_before_o2c_reported_is_released_at_the_finalised_quantities(env, worker, systems):
    s = systems
    subscription = usage_world(s, 10_000)
    stale = s.metering.make_draft(subscription, PERIOD)  # the period ended in billing before o2c reported
    assert [(x.quantity, x.amount) for x in stale.lines] == [(0, usd("0.00"))]
    handle = await start(env, worker, subscription)
    result = await handle.result()

    assert result.outcome == UsageOutcome.RELEASED and result.invoice_id == stale.id, result.message
    invoice = s.billing.invoices[stale.id]
    assert [(x.meter, x.quantity, x.amount) for x in invoice.lines] == [
        ("api_calls", 10_000, usd("100.00")),  # re-quantified at finalisation
        ("", None, usd("10.00")),  # tax quoted on o2c's rating, not on the stale 0.00
    ]
    release = s.usage.released[handle.id]
    assert (release.quantities, release.subtotal, release.total) == (
        {"api_calls": 10_000},
        usd("100.00"),
        usd("110.00"),
    )
    accrual = s.erp.entries[result.journal_entries[0]]
    assert accrual.total_debits == usd("100.00")
    done = await state(handle)
    assert done.metered == {"api_calls": 10_000} and done.rated == {"api_calls": usd("100.00")}
    assert not done.unpriced


async def test_usage_billing_dropped_parks_with_the_difference_and_retry_sends_it_again(env, worker, systems):
    s = systems
    subscription = usage_world(s, 10_000)
    s.metering.drop_reports = True  # billing rejects the events afterwards (the customer is unknown to the meter)
    handle = await start(env, worker, subscription)
    await env.sleep(timedelta(hours=2))  # six re-reads ten minutes apart
    parked = await until(handle, Status.NEEDS_ATTENTION)
    assert parked.attention.step == "usage completeness"
    [difference] = parked.differences
    assert (difference.meter, difference.counted, difference.billed) == ("api_calls", 10_000, 0)
    assert difference.text == "billing's meter holds 0 API calls; o2c counted 10,000 (10,000 fewer)"
    assert difference.text in parked.attention.message
    assert parked.metered == {"api_calls": 0}
    assert s.ledger.count("usage.metered_quantity") == 1 + 6 and not s.metering.events
    s.metering.drop_reports = False  # the customer is fixed in billing
    await handle.execute_update(
        UsageReleaseWorkflow.resolve, ResolveInput(action=OperatorAction.RETRY, operator="olga.ops")
    )
    result = await handle.result()

    assert result.outcome == UsageOutcome.RELEASED, result.message
    assert reported(s) == {f"{handle.id}-api_calls-m1": 10_000}  # the same identifier, sent again
    assert [x.identifier for x in s.metering.dropped] == [f"{handle.id}-api_calls-m1"]
    assert s.ledger.count("usage.report") == 2
    invoice = s.billing.invoices[result.invoice_id]
    assert invoice.lines[0].quantity == 10_000 and invoice.total == usd("110.00")


async def test_a_meter_the_subscription_does_not_bill_parks_with_the_difference(env, worker, systems):
    s = systems
    subscription = usage_world(s, 10_000)
    s.usage.count("cus_acme", PERIOD, "storage_gb", 40)  # counted, but no price on the subscription
    storage = Meter(event_name="storage_gb", display_name="Storage", unit="GB")
    handle = await start(env, worker, subscription, meters=[API_CALLS, storage])
    await env.sleep(timedelta(hours=2))
    parked = await until(handle, Status.NEEDS_ATTENTION)
    assert parked.attention.step == "usage completeness"
    [difference] = parked.differences  # the meter counted it: only the line is missing
    assert (difference.meter, difference.counted, difference.billed) == ("storage_gb", 40, None)
    assert "does not bill this meter" in difference.text and "40 GB" in difference.text
    await handle.execute_update(
        UsageReleaseWorkflow.resolve, ResolveInput(action=OperatorAction.ABORT, operator="olga.ops")
    )
    result = await handle.result()
    assert (result.status, result.outcome) == (Status.ROLLED_BACK, UsageOutcome.NOT_RELEASED)
    assert nothing_booked(s) and s.billing.invoices[parked.draft_id].status == "draft"


async def test_usage_of_an_entity_billed_on_its_own_account_is_metered_and_invoiced_there(env, worker, systems):
    s = systems
    s.metering.accounts["US02"] = "acct_us02"  # billing knows the customer in that account only
    subscription = f"sub_m{uuid.uuid4().hex[:6]}"
    s.metering.subscribe(metered_customer(subscription, customer="cus_globex", legal_entity="US02"))
    s.billing.accounts["cus_globex"] = s.billing.accounts["cus_acme"].model_copy(update={"id": "cus_globex"})
    s.usage.count("cus_globex", PERIOD, "api_calls", 10_000, events=1_000)
    handle = await start(env, worker, subscription, customer="cus_globex", legal_entity="US02")
    await until(handle, Status.AWAITING_APPROVAL)  # a first usage invoice: a person looks at it
    await decide(handle, "fiona.finance", ApproverRole.FINANCE)
    result = await handle.result()
    assert result.outcome == UsageOutcome.RELEASED, result.message
    assert s.metering.metered_sum("cus_globex", "api_calls", PERIOD) == 10_000
    assert s.billing.invoices[result.invoice_id].status == "open"


async def test_a_finalised_quantity_other_than_counted_rolls_the_release_back(env, worker, systems, monkeypatch):
    s = systems
    subscription = usage_world(s, 10_000)
    finalize = s.metering.finalize_invoice

    async def someone_else_reports_first(invoice_id, **options):
        # Another system sends usage of the period to the meter during the grace period.
        late = MeterReport(
            identifier="other-system-1", event_name="api_calls", customer="cus_acme", value=500, timestamp=IN_PERIOD
        )
        s.metering.events.setdefault(late.identifier, late)
        return await finalize(invoice_id, **options)

    monkeypatch.setattr(s.metering, "finalize_invoice", someone_else_reports_first)
    handle = await start(env, worker, subscription)
    result = await handle.result()

    assert (result.status, result.outcome) == (Status.ROLLED_BACK, UsageOutcome.ROLLED_BACK), result.message
    assert "the finalised invoice holds 10,500 API calls; o2c counted 10,000 (500 more)" in result.message
    invoice = s.billing.invoices[result.invoice_id]
    assert invoice.status == "void" and invoice.lines[0].quantity == 10_500
    assert result.compensated == ["invoice", "tax line"]
    assert nothing_booked(s) and not s.notifications.outbox
    done = await state(handle)
    assert [(d.meter, d.counted, d.billed) for d in done.differences] == [("api_calls", 10_000, 10_500)]


async def test_a_meter_without_a_known_price_is_weighed_at_the_drafts_amount(env, worker, systems):
    s = systems
    subscription = usage_world(s, 10_000)
    handle = await start(env, worker, subscription, prices=[])
    result = await handle.result()

    assert result.outcome == UsageOutcome.RELEASED, result.message
    done = await state(handle)
    assert done.unpriced == ["api_calls"] and done.rated == {"api_calls": usd("100.00")}
    assert any("no price known for api_calls" in e.text for e in done.events)
    assert s.usage.released[handle.id].subtotal == usd("100.00")


async def test_a_finalisation_failure_parks_and_abort_takes_the_tax_line_off(env, worker, systems):
    s = systems
    subscription = usage_world(s, 10_000)
    s.ledger.fail(
        "usage.finalize_invoice",
        BusinessError("stripe", "automatic tax needs the customer's location", code="failed_tax_calculation"),
    )
    handle = await start(env, worker, subscription)
    parked = await until(handle, Status.NEEDS_ATTENTION)
    assert parked.attention.step == "invoice finalize" and "location" in parked.attention.message
    draft = s.billing.invoices[parked.draft_id]
    assert any(x.amount == usd("10.00") for x in draft.lines)  # the tax line is on the draft
    await handle.execute_update(
        UsageReleaseWorkflow.resolve, ResolveInput(action=OperatorAction.ABORT, operator="olga.ops")
    )
    result = await handle.result()
    assert (result.status, result.outcome) == (Status.ROLLED_BACK, UsageOutcome.ROLLED_BACK)
    draft = s.billing.invoices[parked.draft_id]
    assert draft.status == "draft" and [x.meter for x in draft.lines] == ["api_calls"]
    assert result.compensated == ["invoice", "tax line"] and s.ledger.count("billing.void_invoice") == 0
    assert nothing_booked(s)


async def test_a_permanent_erp_failure_rolls_the_release_back(env, worker, systems, monkeypatch):
    s = systems
    subscription = usage_world(s, 10_000)
    post = s.erp.post_journal_entry

    async def refuse_the_invoice_entry(entry):
        if entry.external_id.endswith("-invoice"):
            s.ledger.record("erp.post_journal_entry")
            raise IntegrationBug("netsuite", "403 the role may not post to this subsidiary")
        return await post(entry)

    monkeypatch.setattr(s.erp, "post_journal_entry", refuse_the_invoice_entry)
    handle = await start(env, worker, subscription)
    result = await handle.result()

    assert (result.status, result.outcome) == (Status.ROLLED_BACK, UsageOutcome.ROLLED_BACK), result.message
    invoice = s.billing.invoices[result.invoice_id]
    assert invoice.status == "void"
    assert s.tax.documents[invoice.id].status == "Cancelled"
    accrual = next(e for e in s.erp.entries.values() if not e.reverses)
    reversal = next(e for e in s.erp.entries.values() if e.reverses)
    assert reversal.reverses == accrual.external_id and reversal.total_debits == accrual.total_debits
    assert handle.id not in s.usage.released and not s.schedules.schedules
    assert result.compensated == [
        "journal entry invoice",
        "journal entry accrual",
        "tax document",
        "invoice",
        "tax line",
    ]


async def test_a_failure_recording_the_release_undoes_everything_before_it(env, worker, systems):
    s = systems
    subscription = usage_world(s, 10_000)
    s.ledger.fail("usage.record_release", IntegrationBug("o2c", "the usage store refused the release"))
    handle = await start(env, worker, subscription)
    result = await handle.result()

    assert result.outcome == UsageOutcome.ROLLED_BACK, result.message
    assert result.compensated == [
        "usage release",
        "revenue schedule",
        "journal entry invoice",
        "journal entry accrual",
        "tax document",
        "invoice",
        "tax line",
    ]
    assert s.ledger.count("usage.delete_release") == 1 and handle.id not in s.usage.released
    assert not s.schedules.schedules and s.billing.invoices[result.invoice_id].status == "void"
    assert sum(1 for e in s.erp.entries.values() if e.reverses) == 2
    assert not s.notifications.outbox  # the customer hears of nothing that was undone


async def test_a_second_start_lands_on_the_same_workflow(env, worker, systems):
    subscription = usage_world(systems, 10_000)
    first = await start_usage_release(env.client, release_input(subscription), task_queue=worker)
    second = await start_usage_release(env.client, release_input(subscription), task_queue=worker)
    assert first.id == second.id == usage_workflow_id(subscription, PERIOD)
    assert (await first.result()).outcome == UsageOutcome.RELEASED
    third = await start_usage_release(env.client, release_input(subscription), task_queue=worker)
    assert (await third.describe()).run_id == (await first.describe()).run_id  # finished: still the one
    assert systems.ledger.count("usage.finalize_invoice") == 1 and len(systems.usage.released) == 7


async def test_the_period_close_starts_each_subscription_once(env, worker, systems):
    s = systems
    ours = usage_world(s, 10_000)
    s.metering.accounts["US02"] = "acct_us02"
    other = f"sub_m{uuid.uuid4().hex[:6]}"
    s.metering.subscribe(metered_customer(other, legal_entity="US02"))
    close = UsageCloseInput(period=PERIOD, legal_entities=release_input(ours).legal_entities)

    first: UsageCloseResult = await env.client.execute_workflow(
        UsagePeriodCloseWorkflow.run, close, id=f"usage-close-{uuid.uuid4().hex[:6]}", task_queue=worker
    )
    second: UsageCloseResult = await env.client.execute_workflow(
        UsagePeriodCloseWorkflow.run, close, id=f"usage-close-{uuid.uuid4().hex[:6]}", task_queue=worker
    )
    ids = [usage_workflow_id(ours, PERIOD), usage_workflow_id(other, PERIOD)]
    assert sorted(first.started) == sorted(ids) and not first.already_started
    assert sorted(second.already_started) == sorted(ids) and not second.started
    started = env.client.get_workflow_handle_for(UsageReleaseWorkflow.run, ids[1])
    child = await started.query(UsageReleaseWorkflow.state, result_type=UsageState)
    assert (child.customer, child.period) == ("cus_acme", PERIOD)
    for workflow_id in ids:
        with contextlib.suppress(RPCError):  # one may have finished already
            await env.client.get_workflow_handle(workflow_id).terminate(reason="the scan is this test's concern")


async def test_the_period_close_pages_through_billing_and_continues_as_new(env, worker, systems):
    s = systems
    subscriptions = sorted(usage_world(s, 100, history=False) for _ in range(5))
    close = UsageCloseInput(
        period=PERIOD, legal_entities=release_input(subscriptions[0]).legal_entities, page=2, starts_per_run=3
    )
    handle = await env.client.start_workflow(
        UsagePeriodCloseWorkflow.run, close, id=f"usage-close-{uuid.uuid4().hex[:6]}", task_queue=worker
    )
    result: UsageCloseResult = await handle.result()
    ids = [usage_workflow_id(x, PERIOD) for x in subscriptions]
    assert sorted(result.started) == ids  # every one once, across the runs
    runs = [e async for e in handle.fetch_history_events() if e.HasField("workflow_execution_started_event_attributes")]
    assert len(runs) == 1  # this handle follows the last run ...
    # ... of a scan that read three pages of two, then each other entity's (empty) one.
    assert s.ledger.count("usage.customers") == 3 + len(close.legal_entities) - 1
    for workflow_id in ids:
        with contextlib.suppress(RPCError):
            await env.client.get_workflow_handle(workflow_id).terminate(reason="the scan is this test's concern")


def test_identifiers_are_derived_from_the_aggregate_and_fit_stripe():
    assert report_identifier("usage-sub_1-2026-10", "api_calls", 2) == "usage-sub_1-2026-10-api_calls-m2"
    long = report_identifier("usage-" + "s" * 90 + "-2026-10", "api_calls", 1)
    assert len(long) <= 100 and long == report_identifier("usage-" + "s" * 90 + "-2026-10", "api_calls", 1)
