"""Hostile operator decisions on the cash exception queue: applying a waiting receipt to an
unknown invoice, two customers' invoices at once, above what it holds or what is open, in another currency,
by nobody, or a receipt that does not wait; refunding more than is unapplied. Each is refused by
the cash application's update validators (or as data, before it is sent), nothing is posted,
and the receipt still waits; the decision that fits is then taken once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.registry import all_activities
from adapters.temporal import register_search_attributes
from canonical.cash.models import Receipt, ReceiptSource
from canonical.models import LegalEntity
from canonical.money import Money
from starter.binaries import test_server_binary
from tests.fakes_cash import CashSystems
from workflows.cash import (
    ApplyReceipt,
    CashApplicationInput,
    CashApplicationWorkflow,
    InvoiceAmount,
    RefundReceipt,
    cash_workflow_id,
)
from workflows.kit.status import SEARCH_ATTRIBUTES, Status
from workflows.registry import ALL_WORKFLOWS

ENTITIES = [LegalEntity(code="US01", company_code="US01", functional_currency="USD", erp_subsidiary="1")]
WAITING = "camt053:US-ACC:B-9"


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


@pytest.fixture(scope="module")
async def env():
    environment = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=test_server_binary()
    )
    await register_search_attributes(environment.client, "default", SEARCH_ATTRIBUTES)
    yield environment
    await environment.shutdown()


@pytest.fixture
async def waiting(env):
    """A statement whose one receipt, 75.00 from nobody known, waits for an operator; INV-1 of
    cus_acme has 50.00 open and INV-2 of cus_beta 100.00."""
    cash = CashSystems()
    await cash.invoice("INV-1", "50.00")
    await cash.invoice("INV-2", "100.00", customer="cus_beta")
    statement = f"camt053:US-ACC:{uuid.uuid4().hex[:6]}"
    await cash.receive(
        Receipt(
            receipt_id=WAITING,
            source=ReceiptSource.CAMT053,
            legal_entity="US01",
            amount=usd("75.00"),
            value_date=date(2026, 11, 30),
            bank_reference="B-9",
            statement_id=statement,
            bank_account="US-ACC",
            payer_name="Somebody Unknown",
        )
    )
    task_queue = f"cash-bad-{uuid.uuid4().hex[:6]}"
    async with Worker(
        env.client, task_queue=task_queue, workflows=ALL_WORKFLOWS, activities=all_activities(**cash.ports())
    ):
        handle = await env.client.start_workflow(
            CashApplicationWorkflow.run,
            CashApplicationInput(statement_id=statement, legal_entity="US01", legal_entities=ENTITIES),
            id=cash_workflow_id(statement_id=statement),
            task_queue=task_queue,
        )

        async def until_waiting() -> None:
            while True:
                state = await handle.query(CashApplicationWorkflow.state)
                if state.status == Status.NEEDS_ATTENTION and len(state.waiting) == 1:
                    return
                await asyncio.sleep(0.05)

        await asyncio.wait_for(until_waiting(), 20)
        yield handle, cash
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate("test over")


def posted(cash: CashSystems) -> dict[str, Any]:
    """What the receivables fake holds: customer payments and refunds by external id."""
    return {"payments": dict(cash.receivables.payments), "refunds": dict(cash.receivables.refunds)}


def apply(invoices: list[InvoiceAmount], *, receipt_id: str = WAITING, operator: str = "olga.ops") -> ApplyReceipt:
    return ApplyReceipt(receipt_id=receipt_id, invoices=invoices, operator=operator)


BAD_APPLICATIONS = {
    "an unknown invoice": apply([InvoiceAmount(invoice_id="INV-404", amount=usd("10.00"))]),
    "more than the receipt holds": apply(
        [InvoiceAmount(invoice_id="INV-1", amount=usd("50.00")), InvoiceAmount(invoice_id="INV-2", amount=usd("40.00"))]
    ),
    "more than is open on the invoice": apply([InvoiceAmount(invoice_id="INV-1", amount=usd("60.00"))]),
    "a zero amount": apply([InvoiceAmount(invoice_id="INV-1", amount=usd("0.00"))]),
    "a negative amount": apply([InvoiceAmount(invoice_id="INV-1", amount=usd("-5.00"))]),
    "another currency": apply([InvoiceAmount(invoice_id="INV-1", amount=Money.of("10.00", "EUR"))]),
    "two customers' invoices": apply(
        [InvoiceAmount(invoice_id="INV-1", amount=usd("50.00")), InvoiceAmount(invoice_id="INV-2", amount=usd("25.00"))]
    ),
    "the same invoice twice": apply(
        [InvoiceAmount(invoice_id="INV-1", amount=usd("30.00")), InvoiceAmount(invoice_id="INV-1", amount=usd("30.00"))]
    ),
    "nobody deciding": apply([InvoiceAmount(invoice_id="INV-1", amount=usd("10.00"))], operator=" "),
    "a receipt that does not wait": apply(
        [InvoiceAmount(invoice_id="INV-1", amount=usd("10.00"))], receipt_id="camt053:US-ACC:B-404"
    ),
}

BAD_REFUNDS = {
    "more than is unapplied": RefundReceipt(receipt_id=WAITING, amount=usd("75.01"), operator="olga.ops"),
    "a negative refund": RefundReceipt(receipt_id=WAITING, amount=usd("-1.00"), operator="olga.ops"),
    "another currency": RefundReceipt(receipt_id=WAITING, amount=Money.of("5.00", "EUR"), operator="olga.ops"),
    "nobody deciding": RefundReceipt(receipt_id=WAITING, amount=usd("5.00"), operator=""),
    "a receipt that does not wait": RefundReceipt(receipt_id="camt053:US-ACC:B-404", operator="olga.ops"),
}


async def still_waits(handle: WorkflowHandle) -> None:
    state = await handle.query(CashApplicationWorkflow.state)
    assert state.status == Status.NEEDS_ATTENTION and [w.receipt_id for w in state.waiting] == [WAITING]
    assert state.decisions == []


async def test_hostile_applications_are_refused_and_post_nothing(waiting):
    handle, cash = waiting
    before = posted(cash)
    for why, decision in BAD_APPLICATIONS.items():
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(CashApplicationWorkflow.apply_receipt, decision)
            raise AssertionError(f"{why} was accepted")
        assert posted(cash) == before, why
    await still_waits(handle)

    # What fits is taken, once: all of it to cus_beta's INV-2.
    fits = apply([InvoiceAmount(invoice_id="INV-2", amount=usd("75.00"))])
    await handle.execute_update(CashApplicationWorkflow.apply_receipt, fits)
    assert (await handle.result()).status == Status.COMPLETED
    payment = cash.receivables.payments[f"cash-{WAITING}"]
    assert payment.customer == "cus_beta" and [(a.invoice_id, a.amount) for a in payment.applications] == [
        ("INV-2", usd("75.00"))
    ]


async def test_hostile_refunds_are_refused_and_post_nothing(waiting):
    handle, cash = waiting
    before = posted(cash)
    for why, decision in BAD_REFUNDS.items():
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(CashApplicationWorkflow.refund_receipt, decision)
            raise AssertionError(f"{why} was accepted")
        assert posted(cash) == before, why
    await still_waits(handle)


@pytest.mark.parametrize(
    "data",
    [
        {"receipt_id": WAITING, "invoices": [], "operator": "olga.ops"},  # nothing to apply
        {"receipt_id": WAITING, "invoices": [{"invoice_id": "", "amount": None}], "operator": "olga.ops"},
        {"receipt_id": WAITING, "invoices": [{"invoice_id": "INV-1"}], "operator": "olga.ops", "force": True},
        {
            "receipt_id": WAITING,
            "invoices": [{"invoice_id": "INV-1", "amount": {"amount": "1e9999", "currency": "USD"}}],
        },
        {"receipt_id": WAITING, "invoices": [{"invoice_id": "INV-1", "amount": {"amount": "NaN", "currency": "USD"}}]},
    ],
)
def test_a_decision_that_is_not_one_is_refused_before_it_is_sent(data):
    with pytest.raises(ValidationError):
        ApplyReceipt.model_validate(data)
