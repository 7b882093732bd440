"""The cash application workflow on the time-skipping server, over the cash fakes and the real
matching: a statement's receipts applied, posted once, and the exception queue worked by
operators through the workflow's updates."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.registry import all_activities
from adapters.errors import TransientError
from canonical.cash.models import ExceptionKind, MatchRule, Receipt, ReceiptSource
from canonical.models import LegalEntity, PaymentEvent, PaymentEventKind
from canonical.money import Money
from tests.fakes_cash import CashSystems
from workflows.cash import (
    ApplyReceipt,
    CashApplicationInput,
    CashApplicationWorkflow,
    CashResult,
    InvoiceAmount,
    RefundReceipt,
    cash_workflow_id,
)
from workflows.dunning import PAYMENT_EVENT_SIGNAL, dunning_workflow_id
from workflows.kit.status import Status
from workflows.registry import ALL_WORKFLOWS

ENTITIES = [
    LegalEntity(code="US01", company_code="US01", functional_currency="USD", erp_subsidiary="1"),
    LegalEntity(code="DE01", company_code="DE01", functional_currency="EUR", erp_subsidiary="2"),
]
PAID_ON = date(2026, 11, 30)


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


@pytest.fixture
def cash() -> CashSystems:
    return CashSystems()


@pytest.fixture
async def cash_worker(env, cash):
    task_queue = f"cash-{uuid.uuid4()}"
    async with Worker(
        env.client, task_queue=task_queue, workflows=ALL_WORKFLOWS, activities=all_activities(**cash.ports())
    ):
        yield task_queue


def receipt(statement: str, ref: str, amount: str, *, references=(), payer="", entity="US01") -> Receipt:
    return Receipt(
        receipt_id=f"camt053:US-ACC:{ref}",
        source=ReceiptSource.CAMT053,
        legal_entity=entity,
        amount=usd(amount),
        value_date=PAID_ON,
        bank_reference=ref,
        statement_id=statement,
        bank_account="US-ACC",
        payer_name=payer,
        references=list(references),
    )


async def statement_of(cash: CashSystems, *receipts: Receipt) -> str:
    return await cash.receive(*receipts)


async def start(env, task_queue: str, statement: str, **options) -> WorkflowHandle:
    return await env.client.start_workflow(
        CashApplicationWorkflow.run,
        CashApplicationInput(statement_id=statement, legal_entity="US01", legal_entities=ENTITIES, **options),
        id=cash_workflow_id(statement_id=statement),
        task_queue=task_queue,
    )


async def until(handle: WorkflowHandle, ready, timeout: float = 20.0):
    async def poll():
        while True:
            state = await handle.query(CashApplicationWorkflow.state)
            if ready(state):
                return state
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), timeout)


def waiting(n: int):
    return lambda s: s.status == Status.NEEDS_ATTENTION and len(s.waiting) == n


async def test_exact_partial_two_invoices_and_an_unknown_payer_applied_by_an_operator(env, cash, cash_worker):
    await cash.invoice("INV-1", "100.00")
    await cash.invoice("INV-2", "250.00")
    await cash.invoice("INV-3", "40.00", customer="cus_beta")
    await cash.invoice("INV-4", "60.00", customer="cus_beta")
    await cash.invoice("INV-5", "75.00", customer="cus_gamma")
    s = f"camt053:US-ACC:{uuid.uuid4().hex[:6]}"
    await statement_of(
        cash,
        receipt(s, "B-1", "100.00", references=["INV-1"]),  # exact
        receipt(s, "B-2", "200.00", references=["INV-2"]),  # partial
        receipt(s, "B-3", "100.00", references=["INV-3", "INV-4"]),  # two invoices
        receipt(s, "B-4", "75.00", payer="Somebody Unknown"),  # nobody known
    )
    handle = await start(env, cash_worker, s)
    state = await until(handle, waiting(1))

    assert state.by_rule == {
        MatchRule.EXACT_REFERENCE.value: 1,
        MatchRule.PARTIAL_REFERENCE.value: 1,
        MatchRule.COMBINATION.value: 1,
        MatchRule.UNMATCHED.value: 1,
    }
    assert state.applied == {"USD": usd("400.00")}
    assert state.waiting_unapplied == {"USD": usd("75.00")}
    assert state.waiting[0].kind == ExceptionKind.UNMATCHED
    assert "1 unmatched" in state.stage and "75.00 USD unapplied" in state.stage

    payments = cash.receivables.payments
    assert sorted(payments) == ["cash-camt053:US-ACC:B-1", "cash-camt053:US-ACC:B-2", "cash-camt053:US-ACC:B-3"]
    b3 = payments["cash-camt053:US-ACC:B-3"]
    assert b3.customer == "cus_beta" and b3.account == "1000"
    assert {(a.invoice_id, a.amount) for a in b3.applications} == {("INV-3", usd("40.00")), ("INV-4", usd("60.00"))}
    assert b3.applications[0].erp_document == cash.receivables.documents[b3.applications[0].invoice_id]
    suspense = cash.erp.entries["cash-camt053:US-ACC:B-4-suspense"]
    assert [(x.account, x.debit, x.credit) for x in suspense.lines] == [
        ("1000", usd("75.00"), None),
        ("2150", None, usd("75.00")),
    ]
    # Bank cash settling an invoice in full is news for billing; a partial payment is not.
    assert sorted(cash.payments.paid_out_of_band) == ["INV-1", "INV-3", "INV-4"]
    assert cash.payments.paid_out_of_band["INV-1"] == f"{handle.id}/paid-out-of-band-INV-1"
    assert cash.crm.receivables["cus_acme"] == (usd("50.00"), PAID_ON)
    assert cash.crm.receivables["cus_beta"] == (usd("0.00"), PAID_ON)

    decided = await handle.execute_update(
        CashApplicationWorkflow.apply_receipt,
        ApplyReceipt(
            receipt_id="camt053:US-ACC:B-4",
            invoices=[InvoiceAmount(invoice_id="INV-5")],
            operator="olga.ops",
            comment="Gamma paid from a new account",
        ),
    )
    assert decided.decided_by == "olga.ops" and decided.applications[0].amount == usd("75.00")
    result: CashResult = await handle.result()
    assert result.status == Status.COMPLETED and result.decisions == 1
    assert result.applied == {"USD": usd("475.00")}
    reversal = cash.erp.entries["cash-camt053:US-ACC:B-4-suspense-reversal"]
    assert reversal.reverses == "cash-camt053:US-ACC:B-4-suspense"
    moved = payments["cash-camt053:US-ACC:B-4"]
    assert moved.customer == "cus_gamma" and moved.unapplied.is_zero
    assert "INV-5" in cash.payments.paid_out_of_band
    state = await handle.query(CashApplicationWorkflow.state)
    assert state.decisions[0].comment == "Gamma paid from a new account"
    assert (await cash.cash.match_of("camt053:US-ACC:B-4")).rule == MatchRule.OPERATOR


async def test_a_duplicate_settlement_waits_named_and_is_refunded_from_the_customer_payment(env, cash, cash_worker):
    await cash.invoice("INV-1", "100.00")
    s = f"camt053:US-ACC:{uuid.uuid4().hex[:6]}"
    await statement_of(
        cash,
        receipt(s, "B-1", "100.00", references=["INV-1"]),
        receipt(s, "B-2", "100.00", references=["INV-1"]),  # pays it again
    )
    handle = await start(env, cash_worker, s)
    state = await until(handle, waiting(1))
    assert state.waiting[0].kind == ExceptionKind.DUPLICATE_SETTLEMENT
    assert "duplicate settlement" in state.stage
    # The second payment is the customer's, unapplied.
    assert cash.receivables.payments["cash-camt053:US-ACC:B-2"].unapplied == usd("100.00")

    with pytest.raises(WorkflowUpdateFailedError):  # a refund needs a reason
        await handle.execute_update(
            CashApplicationWorkflow.refund_receipt, RefundReceipt(receipt_id="camt053:US-ACC:B-2", operator="olga.ops")
        )
    await handle.execute_update(
        CashApplicationWorkflow.refund_receipt,
        RefundReceipt(receipt_id="camt053:US-ACC:B-2", operator="olga.ops", comment="paid twice by mistake"),
    )
    assert (await handle.result()).status == Status.COMPLETED
    refund = cash.receivables.refunds["cash-camt053:US-ACC:B-2-refund"]
    assert refund.amount == usd("100.00") and refund.customer == "cus_acme"
    assert refund.applications[0].erp_document == "pay-cash-camt053:US-ACC:B-2"
    assert cash.payments.refunds == {}  # a bank receipt is refunded by the ERP, not by Stripe


async def test_a_cross_entity_remittance_sits_in_suspense_and_refusing_bad_decisions_changes_nothing(
    env, cash, cash_worker
):
    await cash.invoice("INV-DE", "80.00", entity="DE01")
    await cash.invoice("INV-US", "300.00")
    s = f"camt053:US-ACC:{uuid.uuid4().hex[:6]}"
    await statement_of(cash, receipt(s, "B-1", "80.00", references=["INV-DE"]))
    handle = await start(env, cash_worker, s)
    state = await until(handle, waiting(1))
    assert state.waiting[0].kind == ExceptionKind.CROSS_ENTITY and state.waiting[0].suspense
    assert "cash-camt053:US-ACC:B-1-suspense" in cash.erp.entries
    assert cash.receivables.payments == {}

    rid = "camt053:US-ACC:B-1"
    bad = [
        ApplyReceipt(receipt_id="nope", invoices=[InvoiceAmount(invoice_id="INV-US")], operator="olga.ops"),
        ApplyReceipt(receipt_id=rid, invoices=[InvoiceAmount(invoice_id="INV-US", amount=usd("80.01"))], operator="o"),
        ApplyReceipt(receipt_id=rid, invoices=[InvoiceAmount(invoice_id="INV-US", amount=usd("0"))], operator="o"),
        ApplyReceipt(receipt_id=rid, invoices=[InvoiceAmount(invoice_id="INV-US")], operator="  "),
        ApplyReceipt(
            receipt_id=rid, invoices=[InvoiceAmount(invoice_id="INV-DE")], operator="olga.ops"
        ),  # other entity
        ApplyReceipt(receipt_id=rid, invoices=[InvoiceAmount(invoice_id="INV-404")], operator="olga.ops"),
    ]
    for decision in bad:
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(CashApplicationWorkflow.apply_receipt, decision)
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            CashApplicationWorkflow.refund_receipt,
            RefundReceipt(receipt_id=rid, amount=usd("90.00"), operator="olga.ops", comment="too much"),
        )
    state = await handle.query(CashApplicationWorkflow.state)
    assert len(state.waiting) == 1 and state.decisions == []
    assert [q.receipt.receipt_id for q in await cash.cash.queue(legal_entity="US01")] == [rid]

    await handle.execute_update(
        CashApplicationWorkflow.refund_receipt,
        RefundReceipt(receipt_id=rid, operator="olga.ops", comment="sent back: DE01 collects its own invoice"),
    )
    assert (await handle.result()).status == Status.COMPLETED
    entry = cash.erp.entries["cash-camt053:US-ACC:B-1-refund"]
    assert [(x.account, x.debit, x.credit) for x in entry.lines] == [
        ("2150", usd("80.00"), None),
        ("1000", None, usd("80.00")),
    ]


async def test_an_erp_outage_is_retried_and_every_receipt_is_posted_once(env, cash, cash_worker):
    for n in range(1, 6):
        await cash.invoice(f"INV-{n}", "10.00")
    s = f"camt053:US-ACC:{uuid.uuid4().hex[:6]}"
    await statement_of(cash, *(receipt(s, f"B-{n}", "10.00", references=[f"INV-{n}"]) for n in range(1, 6)))
    cash.ledger.fail("receivables.post_customer_payment", TransientError("netsuite", "503 unavailable"), times=3)
    handle = await start(env, cash_worker, s)
    result = await handle.result()
    assert result.status == Status.COMPLETED and result.by_rule == {MatchRule.EXACT_REFERENCE.value: 5}
    payments = cash.receivables.payments
    assert len(payments) == 5
    for n in range(1, 6):
        docs = [a.erp_document for p in payments.values() for a in p.applications]
        assert docs.count(cash.receivables.documents[f"INV-{n}"]) == 1
    assert sorted(cash.payments.paid_out_of_band) == [f"INV-{n}" for n in range(1, 6)]


async def test_a_long_statement_continues_as_new_and_counts_every_receipt_once(env, cash, cash_worker):
    for n in range(1, 12):
        await cash.invoice(f"INV-{n:02d}", "5.00")
    s = f"camt053:US-ACC:{uuid.uuid4().hex[:6]}"
    await statement_of(cash, *(receipt(s, f"B-{n:02d}", "5.00", references=[f"INV-{n:02d}"]) for n in range(1, 12)))
    handle = await start(env, cash_worker, s, batch_size=2, batches_per_run=2)
    result = await handle.result()
    assert result.receipts == 11 and result.applied == {"USD": usd("55.00")}
    assert len(cash.receivables.payments) == 11
    state = await env.client.get_workflow_handle(handle.id).query(CashApplicationWorkflow.state)
    continued = [e.text for e in state.events if e.text.startswith("continuing as new")]
    assert continued == ["continuing as new after 4 receipts", "continuing as new after 8 receipts"]
    assert state.batches == 6


def card_payment(charge: str, amount: str, invoice: str, customer: str = "cus_acme") -> Receipt:
    return Receipt(
        receipt_id=f"stripe:platform:{charge}",
        source=ReceiptSource.STRIPE,
        legal_entity="US01",
        amount=usd(amount),
        value_date=PAID_ON,
        bank_reference=charge,
        customer_hint=customer,
        charge_id=charge,
        invoice_hint=invoice,
    )


async def start_receipt(env, task_queue: str, receipt: Receipt) -> WorkflowHandle:
    return await env.client.start_workflow(
        CashApplicationWorkflow.run,
        CashApplicationInput(receipt_id=receipt.receipt_id, legal_entity="US01", legal_entities=ENTITIES),
        id=cash_workflow_id(receipt_id=receipt.receipt_id),
        task_queue=task_queue,
    )


async def test_a_card_payment_posts_to_the_stripe_clearing_account_and_billing_is_not_told_again(
    env, cash, cash_worker
):
    await cash.invoice("INV-S1", "120.00")
    paid = card_payment(f"ch_{uuid.uuid4().hex[:6]}", "120.00", "INV-S1")
    await cash.cash.record_receipt(paid)
    handle = await start_receipt(env, cash_worker, paid)
    assert handle.id == f"cash-{paid.receipt_id}"
    result = await handle.result()
    assert result.by_rule == {MatchRule.EXACT_REFERENCE.value: 1}
    payment = cash.receivables.payments[f"cash-{paid.receipt_id}"]
    assert payment.account == "1010" and payment.customer == "cus_acme"
    assert cash.payments.paid_out_of_band == {}  # Stripe knows its own payments


async def test_a_card_payment_settling_a_settled_invoice_is_refunded_in_billing(env, cash, cash_worker):
    await cash.invoice("INV-S2", "50.00")
    first = card_payment(f"ch_{uuid.uuid4().hex[:6]}", "50.00", "INV-S2")
    again = card_payment(f"ch_{uuid.uuid4().hex[:6]}", "50.00", "INV-S2")
    await cash.cash.record_receipt(first)
    assert (await (await start_receipt(env, cash_worker, first)).result()).status == Status.COMPLETED
    await cash.cash.record_receipt(again)
    handle = await start_receipt(env, cash_worker, again)
    state = await until(handle, waiting(1))
    assert state.waiting[0].kind == ExceptionKind.DUPLICATE_SETTLEMENT, state.waiting[0].explanation
    decided = await handle.execute_update(
        CashApplicationWorkflow.refund_receipt,
        RefundReceipt(receipt_id=again.receipt_id, operator="olga.ops", comment="charged twice"),
    )
    assert (await handle.result()).status == Status.COMPLETED
    [refund] = cash.payments.refunds.values()
    assert (refund.charge_id, refund.amount, refund.reason) == (again.charge_id, usd("50.00"), "duplicate")
    assert decided.posted == [refund.refund_id]
    assert list(cash.payments.refunds) == [f"{handle.id}/refund-{again.receipt_id}"]
    assert cash.receivables.refunds == {}


@workflow.defn(name="DunningWorkflow")
class DunningThatListens:
    """Stands in for a running dunning: it keeps the payment events it is sent."""

    def __init__(self) -> None:
        self.events: list[PaymentEvent] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name=PAYMENT_EVENT_SIGNAL)
    def payment_event(self, event: PaymentEvent) -> None:
        self.events.append(event)

    @workflow.query
    def seen(self) -> list[PaymentEvent]:
        return self.events


async def test_the_dunnings_of_the_invoices_paid_hear_of_it_and_a_missing_dunning_is_fine(env, cash, cash_worker):
    suffix = uuid.uuid4().hex[:6]
    settled, partly = f"INV-D1-{suffix}", f"INV-D2-{suffix}"
    await cash.invoice(settled, "100.00")
    await cash.invoice(partly, "100.00")
    await cash.invoice(f"INV-D3-{suffix}", "30.00")  # nobody dunning it
    dunning_queue = f"dunning-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=dunning_queue,
        workflows=[DunningThatListens],
        workflow_runner=UnsandboxedWorkflowRunner(),  # a stand-in of the test module's own
    ):
        dunnings = [
            await env.client.start_workflow(DunningThatListens.run, id=dunning_workflow_id(i), task_queue=dunning_queue)
            for i in (settled, partly)
        ]
        s = f"camt053:US-ACC:{suffix}"
        await statement_of(
            cash,
            receipt(s, "B-1", "100.00", references=[settled]),
            receipt(s, "B-2", "40.00", references=[partly]),
            receipt(s, "B-3", "30.00", references=[f"INV-D3-{suffix}"]),
        )
        assert (await (await start(env, cash_worker, s)).result()).status == Status.COMPLETED
        [paid] = await dunnings[0].query(DunningThatListens.seen)
        [changed] = await dunnings[1].query(DunningThatListens.seen)
        for d in dunnings:
            await d.terminate("test over")
    assert (paid.kind, paid.amount_remaining, paid.event_id) == (
        PaymentEventKind.PAID,
        usd("0.00"),
        f"camt053:US-ACC:B-1:{settled}",
    )
    assert (changed.kind, changed.amount_remaining) == (PaymentEventKind.BALANCE_CHANGED, usd("60.00"))


async def test_an_overpayment_rest_is_applied_by_adding_a_line_to_the_same_customer_payment(env, cash, cash_worker):
    await cash.invoice("INV-1", "100.00")
    await cash.invoice("INV-2", "45.00")
    s = f"camt053:US-ACC:{uuid.uuid4().hex[:6]}"
    await statement_of(cash, receipt(s, "B-1", "130.00", references=["INV-1"]))
    handle = await start(env, cash_worker, s)
    state = await until(handle, waiting(1))
    assert state.by_rule == {MatchRule.OVERPAID_REFERENCE.value: 1}
    assert state.waiting[0].kind == ExceptionKind.ON_ACCOUNT and state.waiting[0].unapplied == usd("30.00")
    payment = cash.receivables.payments["cash-camt053:US-ACC:B-1"]
    assert payment.applied == usd("100.00") and payment.unapplied == usd("30.00")

    with pytest.raises(WorkflowUpdateFailedError):  # more than INV-2 has open is refused before anything
        await handle.execute_update(
            CashApplicationWorkflow.apply_receipt,
            ApplyReceipt(
                receipt_id="camt053:US-ACC:B-1",
                invoices=[InvoiceAmount(invoice_id="INV-1", amount=usd("30.00"))],
                operator="olga.ops",
            ),
        )
    await handle.execute_update(
        CashApplicationWorkflow.apply_receipt,
        ApplyReceipt(
            receipt_id="camt053:US-ACC:B-1", invoices=[InvoiceAmount(invoice_id="INV-2")], operator="olga.ops"
        ),
    )
    result = await handle.result()
    assert result.applied == {"USD": usd("130.00")} and result.unapplied == {"USD": usd("0.00")}
    payment = cash.receivables.payments["cash-camt053:US-ACC:B-1"]
    assert sorted((a.invoice_id, a.amount) for a in payment.applications) == [
        ("INV-1", usd("100.00")),
        ("INV-2", usd("30.00")),
    ]
    assert len(cash.receivables.payments) == 1  # the same payment, with one more apply line
    assert [i.balance for i in await cash.cash.open_items(invoice_refs=["INV-2"])] == [usd("15.00")]
    assert "INV-2" not in cash.payments.paid_out_of_band  # 15.00 still due
