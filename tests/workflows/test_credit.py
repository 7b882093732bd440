"""CreditWorkflow on the time-skipping test server, with the real activities over fakes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from adapters.errors import BusinessError
from canonical.credit import CreditPolicy
from canonical.credits import CreditedLine, CreditReason, CreditRequest, CreditSettlement
from canonical.models import ApproverRole, PaymentEvent, PaymentEventKind
from canonical.policy_amounts import per_currency
from canonical.revenue.schedules import ratable_schedule
from starter.client import decide
from tests.fakes import usd
from tests.fakes_credits import CreditSystems, booked_invoice
from workflows.credit import CreditInput, CreditResult, CreditState, CreditWorkflow, credit_workflow_id
from workflows.dunning import PAYMENT_EVENT_SIGNAL
from workflows.kit.approval import DecisionInput
from workflows.kit.status import Status
from workflows.registry import ALL_WORKFLOWS

# A finance threshold of 50 USD lets small credits through without a person.
POLICY = CreditPolicy(finance=per_currency(USD=50), controller=per_currency(USD=5000))


@pytest.fixture
def credits(systems) -> CreditSystems:
    return CreditSystems(systems)


@pytest.fixture
async def credit_worker(env, systems, credits, reconciliations):
    systems.reconciliations = reconciliations
    task_queue = f"tq-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=task_queue, workflows=ALL_WORKFLOWS, activities=_activities(credits)):
        yield task_queue


def _activities(credits: CreditSystems):
    from activities.registry import all_activities

    return all_activities(**credits.ports())


def credit(**overrides) -> CreditRequest:
    fields = dict(
        credit_id=f"CR-{uuid.uuid4().hex[:8]}",
        invoice_id="in_credit",
        reason=CreditReason.PRODUCT_UNSATISFACTORY,
        explanation="premium support was not delivered in November",
        requested_by="cindy.success",
        lines=[CreditedLine(line_id="il_support", amount=usd("100.00"))],
    )
    fields.update(overrides)
    return CreditRequest(**fields)


async def start(env, task_queue, request, policy: CreditPolicy = POLICY) -> WorkflowHandle:
    return await env.client.start_workflow(
        CreditWorkflow.run,
        CreditInput(request=request, policy=policy),
        id=credit_workflow_id(request.credit_id),
        task_queue=task_queue,
        result_type=CreditResult,
    )


async def until(handle, status: Status) -> CreditState:
    for _ in range(1200):
        current = await handle.query(CreditWorkflow.state, result_type=CreditState)
        if current.status == status:
            return current
        await asyncio.sleep(0.025)
    raise AssertionError(f"never reached {status}; last {current.status}: {current.stage}")


def decision(approver: str, role: ApproverRole, approved: bool = True) -> DecisionInput:
    return DecisionInput(approver=approver, role=role, approved=approved, comment="checked the SLA report")


def lines_of(entry):
    return {(x.account, x.debit, x.credit) for x in entry.lines}


async def test_a_small_credit_on_an_open_invoice_lowers_what_is_due(env, credit_worker, systems, credits):
    booked_invoice(systems, credits)
    request = credit(lines=[CreditedLine(line_id="il_support", amount=usd("50.00"))])
    handle = await start(env, credit_worker, request)
    result = await handle.result()

    assert result.status == Status.COMPLETED, result.message
    assert result.credited == usd("55.00")
    [note] = credits.payments.credit_notes.values()
    assert note.status == "issued" and note.pre_payment_amount == usd("55.00")
    assert credits.payments.orders[note.credit_note_id].stripe_reason == "product_unsatisfactory"
    assert systems.billing.invoices["in_credit"].amount_remaining == usd("385.00")
    # The return references the original with the original's tax date.
    returned = credits.tax_returns.requests[result.tax_return]
    assert returned.original_code == "in_credit" and returned.original_date == date(2026, 11, 1)
    assert [x.amount for x in returned.lines] == [usd("50.00")]
    # The memo is applied to the original's receivable for what it takes off.
    [memo] = credits.receivables.memos.values()
    assert memo.apply_to == credits.receivables.documents["in_credit"] and memo.apply_amount == usd("55.00")
    assert memo.lines[0].account == "2190" and memo.tax == usd("5.00")
    assert credits.receivables.open[memo.apply_to] == usd("385.00")
    [entry] = systems.erp.entries.values()
    assert lines_of(entry) == {("2400", usd("50.00"), None), ("2190", None, usd("50.00"))}
    calls = systems.ledger.calls
    assert calls.index("payments.preview_credit_note") < calls.index("payments.create_credit_note")
    assert calls.index("payments.create_credit_note") < calls.index("tax.return_invoice")
    assert calls.index("tax.return_invoice") < calls.index("receivables.post_credit_memo")
    assert calls.index("receivables.post_credit_memo") < calls.index("erp.post_journal_entry")

    described = await handle.describe()
    attributes = {p.key.name: p.value for p in described.typed_search_attributes}
    assert attributes["O2cProcess"] == "credit" and attributes["O2cInvoice"] == "in_credit"
    assert attributes["O2cCustomer"] == "cus_acme" and attributes["O2cStatus"] == "completed"


async def test_a_credit_above_the_threshold_waits_for_finance_and_the_requester_cannot_approve(
    env, credit_worker, systems, credits
):
    booked_invoice(systems, credits)
    handle = await start(env, credit_worker, credit())
    waiting = await until(handle, Status.AWAITING_APPROVAL)
    assert waiting.approval.request and waiting.approval.request.required_role == ApproverRole.FINANCE
    assert not credits.payments.credit_notes

    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(CreditWorkflow.decide, decision("cindy.success", ApproverRole.FINANCE))
    # `o2c approve` answers through starter.client.decide, the same update every process has.
    verdict = await decide(
        env.client, handle.id, approver="fiona.finance", role=ApproverRole.FINANCE, approved=True, comment="ok"
    )
    assert verdict == "approved"
    result = await handle.result()
    assert result.status == Status.COMPLETED and result.credited == usd("110.00")


async def test_a_requester_who_is_an_approver_still_cannot_approve_their_own_credit(
    env, credit_worker, systems, credits
):
    booked_invoice(systems, credits)
    handle = await start(env, credit_worker, credit(requested_by="fiona.finance"))
    await until(handle, Status.AWAITING_APPROVAL)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(CreditWorkflow.decide, decision("fiona.finance", ApproverRole.FINANCE))
    assert "cannot approve" in str(refused.value.cause)
    await handle.execute_update(CreditWorkflow.decide, decision("frank.finance", ApproverRole.FINANCE, approved=False))
    result = await handle.result()
    assert result.status == Status.REJECTED and not credits.payments.credit_notes


async def test_netsuite_refusing_the_memo_voids_the_credit_note_and_the_return(env, credit_worker, systems, credits):
    booked_invoice(systems, credits)
    systems.ledger.fail(
        "receivables.post_credit_memo", BusinessError("netsuite", "the customer is inactive", code="INVALID_KEY")
    )
    handle = await start(env, credit_worker, credit(lines=[CreditedLine(line_id="il_seats", amount=usd("30.00"))]))
    result = await handle.result()

    assert result.status == Status.ROLLED_BACK and "customer is inactive" in result.message
    assert result.compensated == ["credit memo", "tax return", "credit note"]
    [note] = credits.payments.credit_notes.values()
    assert note.status == "void"
    assert systems.tax.documents[result.tax_return].status == "Cancelled"
    # The return is voided as a ReturnInvoice, not through the sales documents' void.
    assert systems.ledger.count("tax.void_return") == 1 and systems.ledger.count("tax.void") == 0
    assert systems.billing.invoices["in_credit"].amount_remaining == usd("440.00")
    assert not systems.erp.entries and not credits.receivables.memos


async def test_a_paid_invoice_credit_becomes_customer_balance(env, credit_worker, systems, credits):
    booked_invoice(systems, credits, status="paid", paid="440.00")
    handle = await start(env, credit_worker, credit(lines=[CreditedLine(line_id="il_support", amount=usd("40.00"))]))
    result = await handle.result()
    assert result.status == Status.COMPLETED, result.message
    assert credits.payments.customer_balance["cus_acme"] == usd("44.00")
    [memo] = credits.receivables.memos.values()
    assert memo.apply_to == "" and memo.apply_amount is None
    [entry] = systems.erp.entries.values()
    assert lines_of(entry) == {
        ("2400", usd("40.00"), None),
        ("2190", None, usd("40.00")),
        ("1200", usd("44.00"), None),
        ("2160", None, usd("44.00")),
    }


async def test_a_paid_invoice_credit_refunded_credits_cash(env, credit_worker, systems, credits):
    booked_invoice(systems, credits, status="paid", paid="440.00")
    request = credit(
        lines=[CreditedLine(line_id="il_support", amount=usd("40.00"))], settlement=CreditSettlement.REFUND
    )
    result = await (await start(env, credit_worker, request)).result()
    assert result.status == Status.COMPLETED
    [refund] = credits.payments.refunds.values()
    assert refund.amount == usd("44.00")
    [entry] = systems.erp.entries.values()
    assert ("1010", None, usd("44.00")) in lines_of(entry)


async def test_a_credit_above_what_is_left_is_refused_before_anything_is_issued(env, credit_worker, systems, credits):
    booked_invoice(systems, credits)
    result = await (await start(env, credit_worker, credit(lines=[], amount=usd("400.01")))).result()
    assert result.status == Status.REJECTED and "400.00 USD left to credit before tax" in result.message
    assert not credits.payments.credit_notes and not systems.erp.entries
    unknown = await (await start(env, credit_worker, credit(invoice_id="in_nope"))).result()
    assert unknown.status == Status.REJECTED and "in_nope does not exist" in unknown.message


async def test_a_service_credit_changes_the_revenue_schedule_and_tells_the_dunning(
    env, credit_worker, systems, credits
):
    booked_invoice(systems, credits)
    today = (await env.get_current_time()).date()
    systems.schedules.schedules["rs-C-100"] = ratable_schedule(
        schedule_id="rs-C-100",
        contract_id="C-100",
        account_id="cus_acme",
        legal_entity="US01",
        obligation="subscription",
        total=usd("1200.00"),
        start=date(today.year, 1, 1),
        end=date(today.year + 1, 1, 1),
    )
    queue = f"{credit_worker}-dunning"
    async with Worker(
        env.client, task_queue=queue, workflows=[ListeningDunning], workflow_runner=UnsandboxedWorkflowRunner()
    ):
        dunning = await env.client.start_workflow(ListeningDunning.run, id="dunning-in_credit", task_queue=queue)
        await _service_credit(env, credit_worker, systems, credits, dunning)


async def _service_credit(env, credit_worker, systems, credits, dunning) -> None:
    request = credit(
        reason=CreditReason.SERVICE_CREDIT,
        explanation="four hours of downtime on 3 November (SLA 99.9 %)",
        lines=[],
        amount=usd("60.00"),
    )
    handle = await start(env, credit_worker, request)
    await until(handle, Status.AWAITING_APPROVAL)
    await handle.execute_update(CreditWorkflow.decide, decision("frank.finance", ApproverRole.FINANCE))
    result = await handle.result()
    assert result.status == Status.COMPLETED, result.message
    assert credits.payments.orders[result.credit_note].metadata["o2c_reason"] == "service_credit"
    changed = systems.schedules.schedules["rs-C-100"]
    assert changed.total == usd("1140.00")
    [event] = await heard_by(dunning)
    assert event.kind == PaymentEventKind.BALANCE_CHANGED and event.amount_remaining == usd("374.00")
    await dunning.terminate()


@workflow.defn(name="ListeningDunning")
class ListeningDunning:
    """A stand-in for dunning-<invoice> that keeps what it hears (the real one is tested elsewhere)."""

    def __init__(self) -> None:
        self.heard: list[PaymentEvent] = []

    @workflow.signal(name=PAYMENT_EVENT_SIGNAL)
    def payment_event(self, event: PaymentEvent) -> None:
        self.heard.append(event)

    @workflow.query
    def events(self) -> list[PaymentEvent]:
        return self.heard

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


async def heard_by(handle: WorkflowHandle) -> list[PaymentEvent]:
    for _ in range(200):
        heard = await handle.query(ListeningDunning.events, result_type=list[PaymentEvent])
        if heard:
            return heard
        await asyncio.sleep(0.025)
    return []
