"""Record the histories that test_replay.py replays against the current workflow code.

    python -m tests.histories.record            # re-record every scenario
    python -m tests.histories.record dunning_cash renewal_renewed   # only these

Each scenario runs one workflow on one of its main paths on the time-skipping test server,
with the real activities over the in-memory fakes of tests/fakes.py, and writes the
workflow's history (`history.to_json()`) to tests/histories/<scenario>.json.

Re-record only on purpose: when a workflow change is meant to alter new histories AND is
guarded by `workflow.patched` (docs/workflow-changes.md). Keep the old files too (rename
them, e.g. `amendment_happy.v1.json`): they are the running workflows that the new code
must still replay. A change that makes an old file fail to replay would strand running
workflows in production.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import cast

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.registry import all_activities
from adapters.errors import BusinessError, IntegrationBug
from adapters.ports import CashStorePort
from adapters.temporal import register_search_attributes
from canonical.approval import ApprovalPolicy
from canonical.cash.models import Receipt, ReceiptSource
from canonical.dunning import DunningPolicies, DunningPolicy
from canonical.journal import ChartOfAccounts, WriteOffMethod, WriteOffPolicy, invoice_entry
from canonical.models import (
    TAX_PRODUCT,
    Account,
    Address,
    AmendedLine,
    AmendmentRequest,
    ApproverRole,
    Invoice,
    InvoiceLine,
    LegalEntity,
    PaymentEvent,
    PaymentEventKind,
    Subscription,
    TaxDocument,
)
from canonical.money import Money
from canonical.reconciliation import ReconciliationPolicy
from canonical.renewal import RenewalPolicy, RenewalRequest, RenewedLine
from canonical.revenue import ObligationKind, PerformanceObligation, RevenueContract, recognise
from canonical.usage.models import MeterReport, ReviewAction, UsageDecision
from starter.binaries import test_server_binary
from starter.client import deliver_payment_event
from tests.fakes import FakeSystems, seat_line, usd
from tests.fakes_cards import FakeCardLedger
from tests.fakes_cash import CashSystems
from tests.fakes_credits import CreditSystems
from tests.histories.credit_scenarios import CREDIT_SCENARIOS
from tests.histories.revenue_scenarios import REVENUE_SCENARIOS, revenue_world
from tests.usage_recon_fakes import seed_usage_period
from tests.workflows.usage_world import PERIOD, release_input, usage_world
from workflows.amendment import AmendmentInput, AmendmentWorkflow, amendment_workflow_id
from workflows.cash import (
    ApplyReceipt,
    CashApplicationInput,
    CashApplicationWorkflow,
    InvoiceAmount,
    RefundReceipt,
    cash_workflow_id,
)
from workflows.dunning import DunningOutcome, DunningWorkflow, dunning_workflow_id
from workflows.kit.approval import DecisionInput
from workflows.kit.attention import OperatorAction, ResolveInput
from workflows.kit.status import SEARCH_ATTRIBUTES, Status
from workflows.reconciliation import ReconciliationInput, ReconciliationWorkflow
from workflows.registry import ALL_WORKFLOWS
from workflows.renewal import NonRenewal, RenewalInput, RenewalOutcome, RenewalWorkflow, renewal_workflow_id
from workflows.renewal_window import RenewalWindowWorkflow, WindowInput
from workflows.usage import UsageOutcome, UsageReleaseWorkflow, usage_workflow_id
from workflows.usage_close import UsageCloseInput, UsagePeriodCloseWorkflow

HERE = Path(__file__).parent
CARD = "fp_visa_4242"  # the card fingerprint the cash release's dunning scenarios charge
ENTITIES = [LegalEntity(code="US01", company_code="US01", functional_currency="USD", erp_subsidiary="1")]


# -- the world each scenario starts from -------------------------------------------------------


def acme(systems: FakeSystems, *, term_end: date | None = None, today: date | None = None) -> None:
    systems.billing.accounts["cus_acme"] = Account(
        id="cus_acme",
        name="Acme Corp",
        email="billing@acme.test",
        billing_address=Address(
            line1="1 Market St", city="San Francisco", region="CA", postal_code="94105", country="US"
        ),
    )
    if term_end is None:  # amendments: the November period of a calendar-year term
        systems.billing.subscriptions["sub_acme"] = Subscription(
            id="sub_acme",
            account_id="cus_acme",
            contract_id="C-100",
            currency="USD",
            status="active",
            lines=[seat_line(10)],
            current_period_start=date(2026, 11, 1),
            current_period_end=date(2026, 12, 1),
            term_start=date(2026, 1, 1),
            term_end=date(2027, 1, 1),
        )
    else:  # renewals: a term ending `term_end`
        assert today is not None
        systems.billing.subscriptions["sub_acme"] = Subscription(
            id="sub_acme",
            account_id="cus_acme",
            contract_id="C-200",
            currency="USD",
            status="active",
            lines=[seat_line(10)],
            current_period_start=today - timedelta(days=10),
            current_period_end=today + timedelta(days=20),
            term_start=term_end - timedelta(days=365),
            term_end=term_end,
        )


def amendment(quantity: int = 12) -> AmendmentRequest:
    return AmendmentRequest(
        amendment_id=f"A-{uuid.uuid4().hex[:8]}",
        contract_id="C-100",
        subscription_id="sub_acme",
        account_id="cus_acme",
        currency="USD",
        effective_date=date(2026, 11, 16),
        lines=[AmendedLine(product="seats", quantity=quantity, unit_price=Decimal("50.00"))],
        requested_by="sam.sales",
        reason="customer added seats",
    )


# -- driving a workflow ---------------------------------------------------------------------------


async def poll(handle: WorkflowHandle, query, ready: Callable[[object], bool]) -> None:
    for _ in range(400):
        if ready(await handle.query(query)):
            return
        await asyncio.sleep(0.025)
    raise RuntimeError(f"{handle.id} never reached the expected state")


def expect(actual: object, wanted: object) -> None:
    """A recording of the wrong path is worse than none: stop if a scenario ends elsewhere."""
    if actual != wanted:
        raise RuntimeError(f"the scenario ended in {actual!r}, not {wanted!r}")


def status_is(status: Status) -> Callable[[object], bool]:
    return lambda state: state.status == status


async def until_closed(env: WorkflowEnvironment, handle: WorkflowHandle, step: timedelta = timedelta(days=1)) -> None:
    """Skip time until the workflow closes (a handle not from start_workflow does not skip by itself)."""
    for _ in range(400):
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            return
        await env.sleep(step)
    raise RuntimeError(f"{handle.id} never closed")


async def start_amendment(env, tq, request) -> WorkflowHandle:
    return await env.client.start_workflow(
        AmendmentWorkflow.run,
        AmendmentInput(request=request),
        id=amendment_workflow_id(request.amendment_id),
        task_queue=tq,
    )


async def amendment_happy(env, tq, systems) -> WorkflowHandle:
    handle = await start_amendment(env, tq, amendment(12))
    expect((await handle.result()).status, Status.COMPLETED)
    return handle


async def amendment_dated_by_invoice(env, tq, systems) -> WorkflowHandle:
    """o2c-ledger: effective 16 November, invoiced 1 December; every document dated 1 December."""
    systems.billing.invoice_date = date(2026, 12, 1)
    handle = await start_amendment(env, tq, amendment(12))
    expect((await handle.result()).status, Status.COMPLETED)
    [entry] = systems.erp.entries.values()
    expect(entry.posting_date, date(2026, 12, 1))
    return handle


async def amendment_approval(env, tq, systems) -> WorkflowHandle:
    handle = await start_amendment(env, tq, amendment(100))  # above the controller threshold
    await poll(handle, AmendmentWorkflow.state, status_is(Status.AWAITING_APPROVAL))
    await handle.execute_update(
        AmendmentWorkflow.decide,
        DecisionInput(approver="carla.controller", role=ApproverRole.CONTROLLER, approved=True, comment="ok"),
    )
    expect((await handle.result()).status, Status.COMPLETED)
    return handle


async def amendment_signed_approval(env, tq, systems) -> WorkflowHandle:
    """o2c-console: a process started with an identity key, approved by a signed identity."""
    from adapters.identity_keys import IdentitySigner
    from canonical.approval import ApprovalPolicy
    from canonical.identity import Role

    signer = IdentitySigner.generate()
    request = amendment(100)
    handle = await env.client.start_workflow(
        AmendmentWorkflow.run,
        AmendmentInput(request=request, policy=ApprovalPolicy(identity_keys=[signer.public_key])),
        id=amendment_workflow_id(request.amendment_id),
        task_queue=tq,
    )
    await poll(handle, AmendmentWorkflow.state, status_is(Status.AWAITING_APPROVAL))
    assertion = signer.sign(
        user="carla.controller",
        role=Role.CONTROLLER,
        workflow_id=handle.id,
        decision="approve",
        now=await env.get_current_time(),
    )
    await handle.execute_update(
        AmendmentWorkflow.decide,
        DecisionInput(
            approver="carla.controller", role=ApproverRole.CONTROLLER, approved=True, comment="ok", assertion=assertion
        ),
    )
    expect((await handle.result()).status, Status.COMPLETED)
    return handle


async def amendment_signed_exception_retry(env, tq, systems) -> WorkflowHandle:
    """o2c-console: a process started with an identity key, its exception queue answered by a
    signed operator."""
    from adapters.identity_keys import IdentitySigner
    from canonical.approval import ApprovalPolicy
    from canonical.identity import Role

    signer = IdentitySigner.generate()
    account = systems.billing.accounts["cus_acme"]
    systems.billing.accounts["cus_acme"] = account.model_copy(update={"billing_address": Address(country="US")})
    request = amendment(12)
    handle = await env.client.start_workflow(
        AmendmentWorkflow.run,
        AmendmentInput(request=request, policy=ApprovalPolicy(identity_keys=[signer.public_key])),
        id=amendment_workflow_id(request.amendment_id),
        task_queue=tq,
    )
    await poll(handle, AmendmentWorkflow.state, status_is(Status.NEEDS_ATTENTION))
    systems.billing.accounts["cus_acme"] = account
    assertion = signer.sign(
        user="olga.ops", role=Role.OPERATOR, workflow_id=handle.id, decision="resolve:retry",
        now=await env.get_current_time(),
    )  # fmt: skip
    await handle.execute_update(
        AmendmentWorkflow.resolve, ResolveInput(action=OperatorAction.RETRY, operator="olga.ops", assertion=assertion)
    )
    expect((await handle.result()).status, Status.COMPLETED)
    return handle


async def amendment_exception_retry(env, tq, systems) -> WorkflowHandle:
    account = systems.billing.accounts["cus_acme"]
    systems.billing.accounts["cus_acme"] = account.model_copy(update={"billing_address": Address(country="US")})
    handle = await start_amendment(env, tq, amendment(12))
    await poll(handle, AmendmentWorkflow.state, status_is(Status.NEEDS_ATTENTION))
    systems.billing.accounts["cus_acme"] = account  # the customer master is fixed
    await handle.execute_update(
        AmendmentWorkflow.resolve, ResolveInput(action=OperatorAction.RETRY, operator="olga.ops")
    )
    expect((await handle.result()).status, Status.COMPLETED)
    return handle


async def amendment_abort(env, tq, systems) -> WorkflowHandle:
    # The entry is dated with the invoice (1 December), in the month the ERP has closed.
    systems.billing.invoice_date = date(2026, 12, 1)
    systems.erp.closed_periods.add("2026-12")
    handle = await start_amendment(env, tq, amendment(12))
    await poll(handle, AmendmentWorkflow.state, status_is(Status.NEEDS_ATTENTION))
    await handle.execute_update(
        AmendmentWorkflow.resolve, ResolveInput(action=OperatorAction.ABORT, operator="olga.ops")
    )
    expect((await handle.result()).status, Status.ROLLED_BACK)
    return handle


async def amendment_compensation(env, tq, systems) -> WorkflowHandle:
    systems.ledger.fail("entitlements.set_seats", IntegrationBug("entitlements", "401 unauthorized"))
    handle = await start_amendment(env, tq, amendment(12))
    expect((await handle.result()).status, Status.ROLLED_BACK)
    return handle


async def _dunning(env, tq, systems) -> tuple[WorkflowHandle, Callable[[PaymentEventKind], Awaitable[None]]]:
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
    sent = 0

    async def send(kind: PaymentEventKind, **fields) -> None:
        nonlocal sent
        sent += 1
        now = datetime.fromtimestamp((await env.get_current_time()).timestamp(), UTC)
        await deliver_payment_event(
            env.client,
            PaymentEvent(
                event_id=f"evt_{sent}",
                kind=kind,
                occurred_at=now,
                invoice_id=invoice_id,
                account_id="cus_acme",
                subscription_id="sub_acme",
                **fields,
            ),
            task_queue=tq,
            approvals=ApprovalPolicy(),
        )

    await send(PaymentEventKind.PAYMENT_FAILED, decline_code="insufficient_funds", amount_remaining=usd("500.00"))
    handle = env.client.get_workflow_handle_for(DunningWorkflow.run, dunning_workflow_id(invoice_id))
    send.invoice_id = invoice_id  # type: ignore[attr-defined]
    return handle, send


async def dunning_cash(env, tq, systems) -> WorkflowHandle:
    handle, send = await _dunning(env, tq, systems)
    await env.sleep(timedelta(days=4))  # the day-1 and day-3 retries decline
    systems.billing.pay(send.invoice_id, usd("500.00"))  # type: ignore[attr-defined]
    await send(PaymentEventKind.PAID, amount_remaining=usd("0.00"))
    await until_closed(env, handle)
    expect((await handle.result()).outcome, DunningOutcome.CASH)
    return handle


async def dunning_write_off(env, tq, systems) -> WorkflowHandle:
    handle, _ = await _dunning(env, tq, systems)
    await env.sleep(timedelta(days=21.2))
    await poll(handle, DunningWorkflow.state, status_is(Status.AWAITING_APPROVAL))
    await handle.execute_update(
        DunningWorkflow.decide,
        DecisionInput(approver="fiona.finance", role=ApproverRole.FINANCE, approved=True, comment=""),
    )
    await env.sleep(timedelta(days=9))
    await poll(handle, DunningWorkflow.state, status_is(Status.AWAITING_APPROVAL))
    await handle.execute_update(
        DunningWorkflow.decide,
        DecisionInput(approver="carla.controller", role=ApproverRole.CONTROLLER, approved=True, comment=""),
    )
    await until_closed(env, handle)
    expect((await handle.result()).outcome, DunningOutcome.WRITTEN_OFF)
    return handle


async def _dunning_under(
    env, tq, systems, policies: DunningPolicies, approvals: ApprovalPolicy | None = None, **invoice: object
) -> WorkflowHandle:
    """A dunning of an invoice charged to CARD, started by its failed payment under `policies`
    (and `approvals`: unset, the default approval policy)."""
    invoice_id = f"in_{uuid.uuid4().hex[:10]}"
    fields: dict[str, object] = dict(
        id=invoice_id,
        account_id="cus_acme",
        subscription_id="sub_acme",
        status="open",
        currency="USD",
        total=usd("500.00"),
        amount_paid=usd("0.00"),
        amount_remaining=usd("500.00"),
        payment_method=CARD,
    )
    fields.update(invoice)
    systems.billing.invoices[invoice_id] = Invoice.model_validate(fields)
    now = datetime.fromtimestamp((await env.get_current_time()).timestamp(), UTC)
    event = PaymentEvent(
        event_id="evt_1",
        kind=PaymentEventKind.PAYMENT_FAILED,
        occurred_at=now,
        invoice_id=invoice_id,
        account_id="cus_acme",
        subscription_id="sub_acme",
        decline_code="insufficient_funds",
    )
    await deliver_payment_event(
        env.client, event, task_queue=tq, policies=policies, approvals=approvals or ApprovalPolicy()
    )
    return env.client.get_workflow_handle_for(DunningWorkflow.run, dunning_workflow_id(invoice_id))


async def dunning_card_limit(env, tq, systems) -> WorkflowHandle:
    """Since o2c-cash: other invoices used 13 of the card's 15 attempts; two retries are made,
    the other three refused by the card ledger. Recorded while it waits for day 14's notice."""
    now = datetime.fromtimestamp((await env.get_current_time()).timestamp(), UTC)
    systems.cards.seed(CARD, now - timedelta(days=3), 13)
    handle = await _dunning_under(env, tq, systems, DunningPolicies())
    await env.sleep(timedelta(days=8))
    await poll(handle, DunningWorkflow.state, lambda s: len(s.card_limited) == 2)  # days 5 and 7
    expect(systems.ledger.count("billing.retry_payment"), 2)
    return handle


async def dunning_write_off_allowance(env, tq, systems) -> WorkflowHandle:
    """Since o2c-cash: a year billed ahead with tax, cancelled on day 30, written off against
    the allowance with the California tax relieved and the unserved months credited."""
    today = (await env.get_current_time()).date()
    year = InvoiceLine(
        product="seats",
        description="Seats, one year",
        amount=usd("1200.00"),
        period_start=today - timedelta(days=10),
        period_end=today + timedelta(days=355),
    )
    write_off = WriteOffPolicy(method=WriteOffMethod.ALLOWANCE, tax_relief_jurisdictions=["US-CA"])
    handle = await _dunning_under(
        env,
        tq,
        systems,
        DunningPolicies(default=DunningPolicy(write_off=write_off)),
        total=usd("1284.00"),
        amount_remaining=usd("1284.00"),
        tax=usd("84.00"),
        lines=[year, InvoiceLine(product=TAX_PRODUCT, description="Sales tax", amount=usd("84.00"))],
    )
    await env.sleep(timedelta(days=21.2))
    await poll(handle, DunningWorkflow.state, status_is(Status.AWAITING_APPROVAL))
    await handle.execute_update(
        DunningWorkflow.decide,
        DecisionInput(approver="fiona.finance", role=ApproverRole.FINANCE, approved=True, comment=""),
    )
    await env.sleep(timedelta(days=9))
    await poll(handle, DunningWorkflow.state, status_is(Status.AWAITING_APPROVAL))
    await handle.execute_update(
        DunningWorkflow.decide,
        DecisionInput(approver="carla.controller", role=ApproverRole.CONTROLLER, approved=True, comment=""),
    )
    await until_closed(env, handle)
    result = await handle.result()
    expect(result.outcome, DunningOutcome.WRITTEN_OFF)
    entry = systems.erp.entries[result.write_off_entry]
    expect(sorted({x.account for x in entry.lines if x.debit}), ["1290", "2200", "2400"])
    return handle


async def dunning_approval_expired(env, tq, systems) -> WorkflowHandle:
    """o2c-console: the approvals wait as their policy says (escalated after an hour, expired
    after two), not 3 and 7 dunning days; nobody answers, so the dunning cancels without
    restricting or writing off."""
    windows = ApprovalPolicy(escalate_after=timedelta(hours=1), expire_after=timedelta(hours=2))
    handle = await _dunning_under(env, tq, systems, DunningPolicies(), windows)
    await env.sleep(timedelta(days=21, minutes=30))  # the restriction was asked half an hour ago
    await poll(handle, DunningWorkflow.state, status_is(Status.AWAITING_APPROVAL))
    await env.sleep(timedelta(hours=3))
    await poll(handle, DunningWorkflow.state, lambda s: s.approval.expired_at is not None)
    await until_closed(env, handle)
    expect((await handle.result()).outcome, DunningOutcome.CANCELLED)
    expect(len(systems.erp.entries), 0)
    return handle


async def dunning_answered_on_one_second_days(env, tq, systems) -> WorkflowHandle:
    """o2c-console: on a calendar of one-second days the approvals wait real hours, so both
    are answered well after the 7 seconds that used to expire them."""
    seconds = DunningPolicies(default=DunningPolicy(day=timedelta(seconds=1)))
    handle = await _dunning_under(env, tq, systems, seconds)
    await env.sleep(timedelta(seconds=21.5))
    await poll(handle, DunningWorkflow.state, status_is(Status.AWAITING_APPROVAL))
    await env.sleep(timedelta(minutes=5))
    await handle.execute_update(
        DunningWorkflow.decide,
        DecisionInput(approver="fiona.finance", role=ApproverRole.FINANCE, approved=True, comment=""),
    )
    await poll(
        handle, DunningWorkflow.state, lambda s: s.approval.request and "write off" in s.approval.request.reasons[0]
    )
    await env.sleep(timedelta(minutes=5))
    await handle.execute_update(
        DunningWorkflow.decide,
        DecisionInput(approver="carla.controller", role=ApproverRole.CONTROLLER, approved=True, comment=""),
    )
    await until_closed(env, handle, step=timedelta(minutes=1))
    expect((await handle.result()).outcome, DunningOutcome.WRITTEN_OFF)
    return handle


async def amendment_in_yen(env, tq, systems) -> WorkflowHandle:
    """Since o2c-cash: a JPY 12,000 annual change, below the yen threshold, needs no approval."""
    sub = systems.billing.subscriptions["sub_acme"]
    lines = [x.model_copy(update={"unit_price": Money.of(500, "JPY")}) for x in sub.lines]
    systems.billing.subscriptions["sub_acme"] = sub.model_copy(update={"currency": "JPY", "lines": lines})
    request = amendment(12).model_copy(
        update={"currency": "JPY", "lines": [AmendedLine(product="seats", quantity=12, unit_price=Decimal(500))]}
    )
    handle = await env.client.start_workflow(
        AmendmentWorkflow.run,
        AmendmentInput(request=request),
        id=amendment_workflow_id(request.amendment_id),
        task_queue=tq,
    )
    expect((await handle.result()).status, Status.COMPLETED)
    return handle


async def amendment_revenue_reversed(env, tq, systems) -> WorkflowHandle:
    """Since o2c-ledger: 10 seats sold for 3,000.00 for 2026 (half their list price) go down
    to 2 on 16 November. The 600.00 taken off the rest of the term at list price exceeds
    the 378.08 still unrecognised: the schedule reverses 221.92 at once instead of spreading
    a negative amount over the rest of the year (finance approves the net credit first)."""
    seats = PerformanceObligation(
        obligation_id="seats",
        kind=ObligationKind.SUBSCRIPTION,
        ssp=usd("6000.00"),
        start=date(2026, 1, 1),
        end=date(2027, 1, 1),
    )
    contract = RevenueContract(
        contract_id="C-100",
        account_id="cus_acme",
        legal_entity="US01",
        booked_on=date(2026, 1, 1),
        transaction_price=usd("3000.00"),
        obligations=[seats],
    )
    systems.schedules.schedules.update({s.schedule_id: s for s in recognise(contract)})
    handle = await start_amendment(env, tq, amendment(2))  # a net credit waits for finance
    await poll(handle, AmendmentWorkflow.state, status_is(Status.AWAITING_APPROVAL))
    await handle.execute_update(
        AmendmentWorkflow.decide,
        DecisionInput(approver="fiona.finance", role=ApproverRole.FINANCE, approved=True, comment="ok"),
    )
    expect((await handle.result()).status, Status.COMPLETED)
    [reversed_] = [s for s in systems.schedules.schedules.values() if s.supersedes]
    expect((reversed_.total, reversed_.lines[0].amount), (usd("-221.92"), usd("-221.92")))
    return handle


async def _start_renewal(env, tq, systems) -> WorkflowHandle:
    today = (await env.get_current_time()).date()
    start = today + timedelta(days=120)
    acme(systems, term_end=start, today=today)
    request = RenewalRequest(
        contract_id="C-200",
        subscription_id="sub_acme",
        account_id="cus_acme",
        term=str(start.year + 1),
        new_term_start=start,
        new_term_end=start.replace(year=start.year + 1),
        uplift_percent=Decimal(5),
        lines=[RenewedLine(product="seats", quantity=12)],
        requested_by="sam.sales",
    )
    return await env.client.start_workflow(
        RenewalWorkflow.run,
        RenewalInput(request=request, legal_entities=ENTITIES),
        id=renewal_workflow_id(f"C-200-{uuid.uuid4().hex[:6]}", start),
        task_queue=tq,
    )


async def renewal_renewed(env, tq, systems) -> WorkflowHandle:
    handle = await _start_renewal(env, tq, systems)
    await poll(handle, RenewalWorkflow.state, lambda s: s.stage.startswith("waiting"))
    expect((await handle.result()).outcome, RenewalOutcome.RENEWED)  # time skips four months
    return handle


async def renewal_dated_by_invoice(env, tq, systems) -> WorkflowHandle:
    """o2c-ledger: the new term's tax document and entry carry the date billing gives the invoice."""
    handle = await _start_renewal(env, tq, systems)
    await poll(handle, RenewalWorkflow.state, lambda s: s.stage.startswith("waiting"))
    systems.billing.invoice_date = (await env.get_current_time()).date() + timedelta(days=121)
    expect((await handle.result()).outcome, RenewalOutcome.RENEWED)
    [entry] = [e for e in systems.erp.entries.values() if e.external_id.endswith("-invoice")]
    expect(entry.posting_date, systems.billing.invoice_date)
    return handle


async def renewal_not_renewed(env, tq, systems) -> WorkflowHandle:
    handle = await _start_renewal(env, tq, systems)
    await poll(handle, RenewalWorkflow.state, lambda s: s.stage.startswith("waiting"))
    await env.sleep(timedelta(days=70))  # past the 60-day notice
    await handle.execute_update(
        RenewalWorkflow.cancel, NonRenewal(requested_by="sam.sales", reason="customer chose a competitor")
    )
    expect((await handle.result()).outcome, RenewalOutcome.NOT_RENEWED)
    return handle


async def renewal_window(env, tq, systems) -> WorkflowHandle:
    today = (await env.get_current_time()).date()
    acme(systems, term_end=today + timedelta(days=60), today=today)
    handle = await env.client.start_workflow(
        RenewalWindowWorkflow.run,
        WindowInput(policy=RenewalPolicy(window_days=90), legal_entities=ENTITIES),
        id=f"renewal-window-{uuid.uuid4().hex[:6]}",
        task_queue=tq,
    )
    result = await handle.result()
    expect(len(result.started), 1)
    for started in result.started:  # the renewals it started are not this recording's concern
        await env.client.get_workflow_handle(started).terminate(reason="recording over")
    return handle


async def renewal_window_refused_id(env, tq, systems) -> WorkflowHandle:
    """The window on the business-id release: a subscription whose contract id breaks the id
    rule is left to a person, the other renewed."""
    today = (await env.get_current_time()).date()
    acme(systems, term_end=today + timedelta(days=60), today=today)
    odd = systems.billing.subscriptions["sub_acme"].model_copy(update={"id": "sub_odd", "contract_id": "C 7"})
    systems.billing.subscriptions["sub_odd"] = odd
    handle = await env.client.start_workflow(
        RenewalWindowWorkflow.run,
        WindowInput(policy=RenewalPolicy(window_days=90), legal_entities=ENTITIES),
        id=f"renewal-window-{uuid.uuid4().hex[:6]}",
        task_queue=tq,
    )
    result = await handle.result()
    expect((len(result.started), len(result.refused)), (1, 1))
    for started in result.started:
        await env.client.get_workflow_handle(started).terminate(reason="recording over")
    return handle


def recon_period(systems: FakeSystems) -> None:
    """October 2026: four invoices agree everywhere, one small and one large are missing in
    the ERP, one is booked for a dollar more than billed."""
    day, chart = date(2026, 10, 12), ChartOfAccounts()
    for n, (revenue, in_erp, erp_revenue) in enumerate(
        [("100.00", True, None)] * 4 + [("200.00", False, None), ("5000.00", False, None), ("100.00", True, "101.00")]
    ):
        invoice_id, tax = f"in_{n:03d}", usd(revenue).times(Decimal("0.10"))
        systems.billing.invoices[invoice_id] = Invoice(
            id=invoice_id,
            account_id="cus_acme",
            status="open",
            currency="USD",
            total=usd(revenue) + tax,
            created=day,
            metadata={"o2c_workflow": f"amendment-R{n}"},
            lines=[
                InvoiceLine(product="seats", description="seats", amount=usd(revenue)),
                InvoiceLine(product=TAX_PRODUCT, description="tax", amount=tax),
            ],
        )
        systems.tax.documents[invoice_id] = TaxDocument(
            code=invoice_id,
            type="SalesInvoice",
            status="Committed",
            total_amount=usd(revenue),
            total_tax=tax,
            document_date=day,
        )
        if in_erp:
            entry = invoice_entry(
                external_id=f"amendment-R{n}-invoice",
                subsidiary="1",
                posting_date=day,
                memo="m",
                revenue=usd(erp_revenue or revenue),
                tax=tax,
                chart=chart,
                invoice_id=invoice_id,
            )
            systems.erp.entries[entry.external_id] = entry


async def _reconcile(env, tq, systems, workflow_id: str, **policy) -> WorkflowHandle:
    """Its workflow ID is the scenario's name: the replay test replays a history under the name
    of its file, and the IDs of the children derive from their parent's."""
    recon_period(systems)
    return await env.client.start_workflow(
        ReconciliationWorkflow.run,
        ReconciliationInput(
            legal_entity="US01",
            period="2026-10",
            legal_entities=ENTITIES,
            policy=ReconciliationPolicy(batch_size=3, parallel_batches=2, **policy),
        ),
        id=workflow_id,
        task_queue=tq,
    )


async def reconciliation_heal_approve_park(env, tq, systems) -> WorkflowHandle:
    handle = await _reconcile(env, tq, systems, "reconciliation_heal_approve_park")
    await _approve_heal_then_accept(handle)
    expect((await handle.result()).healed, 2)
    return handle


async def _approve_heal_then_accept(handle: WorkflowHandle) -> None:
    """Finance approves the heal above the limit; the operator accepts what is left."""
    await poll(handle, ReconciliationWorkflow.state, status_is(Status.AWAITING_APPROVAL))
    await handle.execute_update(
        ReconciliationWorkflow.decide,
        DecisionInput(approver="fiona.finance", role=ApproverRole.FINANCE, approved=True, comment="ok"),
    )
    await poll(handle, ReconciliationWorkflow.state, status_is(Status.NEEDS_ATTENTION))
    await handle.execute_update(
        ReconciliationWorkflow.resolve, ResolveInput(action=OperatorAction.SKIP, operator="olga.ops")
    )


async def reconciliation_cut_off(env, tq, systems) -> WorkflowHandle:
    """One invoice's entry is dated in September: found by its key, it is a cut-off difference,
    not a missing entry to heal. The large heal is approved, the rest accepted."""
    entry = invoice_entry(
        external_id="amendment-R4-invoice",
        subsidiary="1",
        posting_date=date(2026, 9, 30),
        memo="dated with the effective date",
        revenue=usd("200.00"),
        tax=usd("20.00"),
        chart=ChartOfAccounts(),
        invoice_id="in_004",
    )
    systems.erp.entries[entry.external_id] = entry
    handle = await _reconcile(env, tq, systems, "reconciliation_cut_off")
    await _approve_heal_then_accept(handle)
    result = await handle.result()
    expect((result.healed, result.found.get("cut_off_difference")), (1, 1))
    return handle


async def reconciliation_continued_as_new(env, tq, systems) -> WorkflowHandle:
    """The first run of a reconciliation that continues as new between batches."""
    handle = await _reconcile(env, tq, systems, "reconciliation_continued_as_new", batches_per_run=1)
    await poll(handle, ReconciliationWorkflow.state, status_is(Status.AWAITING_APPROVAL))
    await handle.terminate(reason="recording over")
    return env.client.get_workflow_handle(handle.id, run_id=handle.result_run_id)


async def reconciliation_batch(env, tq, systems) -> WorkflowHandle:
    """One child batch that matches, then heals what is below the limit."""
    handle = await _reconcile(env, tq, systems, "reconciliation_batch_parent")
    await poll(handle, ReconciliationWorkflow.state, status_is(Status.AWAITING_APPROVAL))
    await handle.terminate(reason="recording over")
    return env.client.get_workflow_handle(f"{handle.id}-p1-batch-2")


# -- waiting mid-way ------------------------------------------------------------------------------
#
# Histories of workflows that were still waiting when recorded: a running workflow of an
# earlier release resumes from exactly such a history after a deploy, so each must keep
# replaying on the code that follows (recorded before the layout moved, and kept).


async def amendment_waiting_for_approval(env, tq, systems) -> WorkflowHandle:
    handle = await start_amendment(env, tq, amendment(100))
    await poll(handle, AmendmentWorkflow.state, status_is(Status.AWAITING_APPROVAL))
    return handle


async def amendment_waiting_in_exception_queue(env, tq, systems) -> WorkflowHandle:
    account = systems.billing.accounts["cus_acme"]
    systems.billing.accounts["cus_acme"] = account.model_copy(update={"billing_address": Address(country="US")})
    handle = await start_amendment(env, tq, amendment(12))
    await poll(handle, AmendmentWorkflow.state, status_is(Status.NEEDS_ATTENTION))
    return handle


async def dunning_between_retries(env, tq, systems) -> WorkflowHandle:
    handle, _ = await _dunning(env, tq, systems)
    await env.sleep(timedelta(days=2))  # the day-1 retry declined; the day-3 one is on its timer
    await poll(handle, DunningWorkflow.state, status_is(Status.RUNNING))
    return handle


async def renewal_waiting_for_term(env, tq, systems) -> WorkflowHandle:
    handle = await _start_renewal(env, tq, systems)
    await poll(handle, RenewalWorkflow.state, lambda s: s.stage.startswith("waiting"))
    await env.sleep(timedelta(days=70))  # the 60-day notice went out; the start day is ahead
    await poll(handle, RenewalWorkflow.state, lambda s: s.stage.startswith("waiting"))
    return handle


async def reconciliation_usage_breaks(env, tq, systems) -> WorkflowHandle:
    """The usage release's reconciliation: a fifth reader (o2c's usage releases) and a break of
    every usage class, none healed; the operator accepts them."""
    await seed_usage_period(systems)
    handle = await env.client.start_workflow(
        ReconciliationWorkflow.run,
        ReconciliationInput(
            legal_entity="US01",
            period="2026-10",
            legal_entities=ENTITIES,
            policy=ReconciliationPolicy(batch_size=3, parallel_batches=2, usage_units={"api_calls": "API calls"}),
        ),
        id="reconciliation_usage_breaks",
        task_queue=tq,
    )
    await poll(handle, ReconciliationWorkflow.state, status_is(Status.NEEDS_ATTENTION))
    await handle.execute_update(
        ReconciliationWorkflow.resolve,
        ResolveInput(action=OperatorAction.SKIP, operator="olga.ops", comment="billing ops re-measure"),
    )
    result = await handle.result()
    expect(result.found.get("usage_cut_off"), 1)
    return handle


async def reconciliation_waiting_in_exception_queue(env, tq, systems) -> WorkflowHandle:
    handle = await _reconcile(env, tq, systems, "reconciliation_waiting_in_exception_queue")
    await poll(handle, ReconciliationWorkflow.state, status_is(Status.AWAITING_APPROVAL))
    await handle.execute_update(
        ReconciliationWorkflow.decide,
        DecisionInput(approver="fiona.finance", role=ApproverRole.FINANCE, approved=True, comment="ok"),
    )
    await poll(handle, ReconciliationWorkflow.state, status_is(Status.NEEDS_ATTENTION))
    return handle


# -- cancelled: the December 2026 release undoes what was booked, then closes cancelled -----------


async def cancel(handle: WorkflowHandle) -> None:
    await handle.cancel()
    try:
        await handle.result()
    except WorkflowFailureError:
        return
    raise RuntimeError(f"{handle.id} was not cancelled")


async def amendment_cancelled(env, tq, systems) -> WorkflowHandle:
    systems.ledger.fail("entitlements.set_seats", BusinessError("entitlements", "refused", code="X", fixable=True))
    handle = await start_amendment(env, tq, amendment(12))
    await poll(handle, AmendmentWorkflow.state, status_is(Status.NEEDS_ATTENTION))
    await cancel(handle)
    return handle


async def renewal_cancelled(env, tq, systems) -> WorkflowHandle:
    handle = await _start_renewal(env, tq, systems)
    await poll(handle, RenewalWorkflow.state, lambda s: s.stage.startswith("waiting"))
    await cancel(handle)
    return handle


async def reconciliation_cancelled(env, tq, systems) -> WorkflowHandle:
    handle = await _reconcile(env, tq, systems, "reconciliation_cancelled")
    await poll(handle, ReconciliationWorkflow.state, status_is(Status.AWAITING_APPROVAL))
    await cancel(handle)
    return handle


# -- usage releases ---------------------------------------------------------------------------------


async def _start_usage(env, tq, systems, quantity: int) -> WorkflowHandle:
    subscription = usage_world(systems, quantity)
    return await env.client.start_workflow(
        UsageReleaseWorkflow.run,
        release_input(subscription),
        id=usage_workflow_id(subscription, PERIOD),
        task_queue=tq,
    )


async def _released(handle: WorkflowHandle) -> WorkflowHandle:
    expect((await handle.result()).outcome, UsageOutcome.RELEASED)
    return handle


async def usage_released(env, tq, systems) -> WorkflowHandle:
    return await _released(await _start_usage(env, tq, systems, 10_000))


async def usage_dated_by_invoice(env, tq, systems) -> WorkflowHandle:
    """o2c-ledger: the usage invoice's documents carry the date billing created the draft."""
    systems.billing.invoice_date = date(2026, 11, 1)
    handle = await _released(await _start_usage(env, tq, systems, 10_000))
    [entry] = [e for e in systems.erp.entries.values() if e.external_id.endswith("-invoice")]
    expect(entry.posting_date, date(2026, 11, 1))
    return handle


async def usage_held_approved(env, tq, systems) -> WorkflowHandle:
    handle = await _start_usage(env, tq, systems, 14_200)  # 1.42x the median: held
    await poll(handle, UsageReleaseWorkflow.state, status_is(Status.AWAITING_APPROVAL))
    await handle.execute_update(
        UsageReleaseWorkflow.decide,
        DecisionInput(approver="fiona.finance", role=ApproverRole.FINANCE, approved=True, comment="launch month"),
    )
    return await _released(handle)


async def usage_adjusted(env, tq, systems) -> WorkflowHandle:
    handle = await _start_usage(env, tq, systems, 14_200)
    await poll(handle, UsageReleaseWorkflow.state, status_is(Status.AWAITING_APPROVAL))
    await handle.execute_update(
        UsageReleaseWorkflow.adjust,
        UsageDecision(
            approver="fiona.finance",
            role=ApproverRole.FINANCE,
            action=ReviewAction.ADJUST,
            credit=usd("42.00"),
            reason="onboarding spike, agreed with customer success",
        ),
    )
    return await _released(handle)


async def usage_remeasured(env, tq, systems) -> WorkflowHandle:
    handle = await _start_usage(env, tq, systems, 14_200)
    await poll(handle, UsageReleaseWorkflow.state, status_is(Status.AWAITING_APPROVAL))
    systems.usage.count("cus_acme", PERIOD, "api_calls", -4_100, events=0)  # the store is corrected
    await handle.execute_update(
        UsageReleaseWorkflow.decide,
        DecisionInput(approver="fiona.finance", role=ApproverRole.FINANCE, approved=False, comment="double counted"),
    )
    return await _released(handle)


async def usage_rolled_back(env, tq, systems) -> WorkflowHandle:
    systems.ledger.fail("erp.post_journal_entry", IntegrationBug("netsuite", "403 the role may not post"))
    handle = await _start_usage(env, tq, systems, 10_000)
    expect((await handle.result()).outcome, UsageOutcome.ROLLED_BACK)
    return handle


async def usage_waiting_for_review(env, tq, systems) -> WorkflowHandle:
    handle = await _start_usage(env, tq, systems, 14_200)
    await poll(handle, UsageReleaseWorkflow.state, status_is(Status.AWAITING_APPROVAL))
    return handle


async def usage_resent_after_a_fix(env, tq, systems) -> WorkflowHandle:
    """Billing drops the reports (it rejects them afterwards), the release parks with the
    difference, billing is fixed, and the operator's retry sends the same reports again."""
    systems.metering.drop_reports = True
    handle = await _start_usage(env, tq, systems, 10_000)
    await env.sleep(timedelta(hours=2))
    await poll(handle, UsageReleaseWorkflow.state, status_is(Status.NEEDS_ATTENTION))
    systems.metering.drop_reports = False
    await handle.execute_update(
        UsageReleaseWorkflow.resolve, ResolveInput(action=OperatorAction.RETRY, operator="olga.ops")
    )
    return await _released(handle)


async def usage_finalised_otherwise(env, tq, systems) -> WorkflowHandle:
    """Another system sends usage of the period to the meter during the grace period: the
    finalised invoice bills more than o2c counted, and the release is undone."""
    finalize = systems.metering.finalize_invoice

    async def someone_else_reports_first(invoice_id, *, idempotency_key):
        late = MeterReport(
            identifier="other-system-1",
            event_name="api_calls",
            customer="cus_acme",
            value=500,
            timestamp=datetime(2026, 10, 20, tzinfo=UTC),
        )
        systems.metering.events.setdefault(late.identifier, late)
        return await finalize(invoice_id, idempotency_key=idempotency_key)

    systems.metering.finalize_invoice = someone_else_reports_first
    handle = await _start_usage(env, tq, systems, 10_000)
    expect((await handle.result()).outcome, UsageOutcome.ROLLED_BACK)
    return handle


async def usage_period_close(env, tq, systems) -> WorkflowHandle:
    subscription = usage_world(systems, 10_000)
    handle = await env.client.start_workflow(
        UsagePeriodCloseWorkflow.run,
        UsageCloseInput(period=PERIOD, legal_entities=ENTITIES),
        id=f"usage-period-close-{uuid.uuid4().hex[:6]}",
        task_queue=tq,
    )
    expect((await handle.result()).started, [usage_workflow_id(subscription, PERIOD)])
    await _released(
        env.client.get_workflow_handle_for(UsageReleaseWorkflow.run, usage_workflow_id(subscription, PERIOD))
    )
    return handle


# -- cash application ------------------------------------------------------------------------


def _bank_receipt(statement: str, ref: str, amount: str, *, references: list[str], payer: str = "") -> Receipt:
    return Receipt(
        receipt_id=f"camt053:US-ACC:{ref}",
        source=ReceiptSource.CAMT053,
        legal_entity="US01",
        amount=usd(amount),
        value_date=date(2026, 11, 30),
        bank_reference=ref,
        statement_id=statement,
        bank_account="US-ACC",
        payer_name=payer,
        references=references,
    )


async def _start_cash(env, tq, systems: CashSystems, *receipts: Receipt, **options) -> WorkflowHandle:
    statement = await systems.receive(*receipts)
    return await env.client.start_workflow(
        CashApplicationWorkflow.run,
        CashApplicationInput(statement_id=statement, legal_entity="US01", legal_entities=ENTITIES, **options),
        id=cash_workflow_id(statement_id=statement),
        task_queue=tq,
    )


async def _cash_waiting(handle: WorkflowHandle, count: int) -> None:
    await poll(
        handle,
        CashApplicationWorkflow.state,
        lambda s: s.status == Status.NEEDS_ATTENTION and len(s.waiting) == count,  # type: ignore[attr-defined]
    )


async def cash_applied(env, tq, systems) -> WorkflowHandle:
    """An exact receipt, a partial one, and one from nobody known that an operator applies."""
    await systems.invoice("INV-1", "100.00")
    await systems.invoice("INV-2", "250.00")
    await systems.invoice("INV-3", "75.00", customer="cus_gamma")
    s = f"camt053:US-ACC:{uuid.uuid4().hex[:6]}"
    handle = await _start_cash(
        env,
        tq,
        systems,
        _bank_receipt(s, "B-1", "100.00", references=["INV-1"]),
        _bank_receipt(s, "B-2", "200.00", references=["INV-2"]),
        _bank_receipt(s, "B-3", "75.00", references=[], payer="Somebody Unknown"),
    )
    await _cash_waiting(handle, 1)
    await handle.execute_update(
        CashApplicationWorkflow.apply_receipt,
        ApplyReceipt(
            receipt_id="camt053:US-ACC:B-3", invoices=[InvoiceAmount(invoice_id="INV-3")], operator="olga.ops"
        ),
    )
    expect((await handle.result()).status, Status.COMPLETED)
    return handle


async def cash_refunded(env, tq, systems) -> WorkflowHandle:
    """A duplicate settlement, refunded from the customer's payment."""
    await systems.invoice("INV-1", "100.00")
    s = f"camt053:US-ACC:{uuid.uuid4().hex[:6]}"
    handle = await _start_cash(
        env,
        tq,
        systems,
        _bank_receipt(s, "B-1", "100.00", references=["INV-1"]),
        _bank_receipt(s, "B-2", "100.00", references=["INV-1"]),
    )
    await _cash_waiting(handle, 1)
    await handle.execute_update(
        CashApplicationWorkflow.refund_receipt,
        RefundReceipt(receipt_id="camt053:US-ACC:B-2", operator="olga.ops", comment="paid twice"),
    )
    expect((await handle.result()).status, Status.COMPLETED)
    return handle


async def cash_continued_as_new(env, tq, systems) -> WorkflowHandle:
    for n in range(1, 6):
        await systems.invoice(f"INV-{n}", "5.00")
    s = f"camt053:US-ACC:{uuid.uuid4().hex[:6]}"
    receipts = [_bank_receipt(s, f"B-{n}", "5.00", references=[f"INV-{n}"]) for n in range(1, 6)]
    handle = await _start_cash(env, tq, systems, *receipts, batch_size=2, batches_per_run=2)
    expect((await handle.result()).receipts, 5)
    return handle


async def cash_waiting_for_decisions(env, tq, systems) -> WorkflowHandle:
    await systems.invoice("INV-1", "100.00")
    s = f"camt053:US-ACC:{uuid.uuid4().hex[:6]}"
    handle = await _start_cash(env, tq, systems, _bank_receipt(s, "B-1", "130.00", references=["INV-1"]))
    await _cash_waiting(handle, 1)
    return handle


SCENARIOS: dict[str, Callable[..., Awaitable[WorkflowHandle]]] = {
    "amendment_happy": amendment_happy,
    "amendment_dated_by_invoice": amendment_dated_by_invoice,
    "amendment_approval": amendment_approval,
    "amendment_signed_approval": amendment_signed_approval,
    "amendment_signed_exception_retry": amendment_signed_exception_retry,
    "amendment_exception_retry": amendment_exception_retry,
    "amendment_abort": amendment_abort,
    "amendment_compensation": amendment_compensation,
    "dunning_cash": dunning_cash,
    "dunning_write_off": dunning_write_off,
    "renewal_renewed": renewal_renewed,
    "renewal_dated_by_invoice": renewal_dated_by_invoice,
    "renewal_not_renewed": renewal_not_renewed,
    "renewal_window": renewal_window,
    "renewal_window_refused_id": renewal_window_refused_id,
    "reconciliation_heal_approve_park": reconciliation_heal_approve_park,
    "reconciliation_cut_off": reconciliation_cut_off,
    "reconciliation_continued_as_new": reconciliation_continued_as_new,
    "reconciliation_batch": reconciliation_batch,
    "reconciliation_usage_breaks": reconciliation_usage_breaks,
    "amendment_waiting_for_approval": amendment_waiting_for_approval,
    "amendment_waiting_in_exception_queue": amendment_waiting_in_exception_queue,
    "dunning_between_retries": dunning_between_retries,
    "renewal_waiting_for_term": renewal_waiting_for_term,
    "reconciliation_waiting_in_exception_queue": reconciliation_waiting_in_exception_queue,
    "amendment_cancelled": amendment_cancelled,
    "renewal_cancelled": renewal_cancelled,
    "reconciliation_cancelled": reconciliation_cancelled,
    "usage_released": usage_released,
    "usage_dated_by_invoice": usage_dated_by_invoice,
    # The same release on the cash release (o2c-cash): the customer upserted in the ERP first.
    "usage_released_cash_release": usage_released,
    "usage_held_approved": usage_held_approved,
    "usage_adjusted": usage_adjusted,
    "usage_remeasured": usage_remeasured,
    "usage_rolled_back": usage_rolled_back,
    "usage_waiting_for_review": usage_waiting_for_review,
    "usage_resent_after_a_fix": usage_resent_after_a_fix,
    "usage_finalised_otherwise": usage_finalised_otherwise,
    "usage_period_close": usage_period_close,
    "dunning_card_limit": dunning_card_limit,
    "dunning_write_off_allowance": dunning_write_off_allowance,
    "dunning_approval_expired": dunning_approval_expired,
    "dunning_answered_on_one_second_days": dunning_answered_on_one_second_days,
    "amendment_in_yen": amendment_in_yen,
    "amendment_revenue_reversed": amendment_revenue_reversed,
    **CREDIT_SCENARIOS,
    "cash_applied": cash_applied,
    "cash_refunded": cash_refunded,
    "cash_continued_as_new": cash_continued_as_new,
    "cash_waiting_for_decisions": cash_waiting_for_decisions,
    **REVENUE_SCENARIOS,
}


async def record(names: list[str], out: Path = HERE) -> list[Path]:
    # The scenarios fail activities on purpose; their tracebacks are noise here.
    logging.getLogger("temporalio.activity").setLevel(logging.CRITICAL)
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=test_server_binary()
    )
    written = []
    try:
        client: Client = env.client
        await register_search_attributes(client, "default", SEARCH_ATTRIBUTES)
        for name in names:
            systems = CashSystems()  # every fake, the cash ports' too
            acme(systems)
            systems.cards = FakeCardLedger()  # type: ignore[attr-defined]
            credits = CreditSystems(systems)
            systems.credits = credits  # type: ignore[attr-defined]  # the credit scenarios' fakes
            task_queue = f"record-{name}-{uuid.uuid4().hex[:6]}"
            # Each scenario gets every fake; the credit ones take the credit fakes of billing and
            # the ERP, and the dunning ones count card attempts in the card ledger fake.
            ports = {**systems.ports(), **(credits.ports() if name in CREDIT_SCENARIOS else {})}
            if name.startswith("dunning_"):
                ports["cash"] = cast(CashStorePort, systems.cards)  # type: ignore[attr-defined]
            if name in REVENUE_SCENARIOS:
                systems.revenue = revenue_world()  # type: ignore[attr-defined]  # o2c's own database
                ports.update(systems.revenue.ports())  # type: ignore[attr-defined]
            activities = all_activities(**ports)
            async with Worker(client, task_queue=task_queue, workflows=ALL_WORKFLOWS, activities=activities):
                handle = await SCENARIOS[name](env, task_queue, systems)
                history = await handle.fetch_history()
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    await handle.terminate(
                        reason="recorded while waiting"
                    )  # after the fetch: the file shows it waiting
            path = out / f"{name}.json"
            path.write_text(history.to_json())
            written.append(path)
            print(
                f"{path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}: "
                f"{len(history.events)} events"
            )
    finally:
        await env.shutdown()
    return written


def main(argv: list[str]) -> int:
    unknown = [n for n in argv if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    asyncio.run(record(argv or list(SCENARIOS)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
