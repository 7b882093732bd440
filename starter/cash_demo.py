"""The demo's cash, credit and dispute stories: a bank statement written by the sandbox bank and
applied (an exact payment, a partial one, one paying two invoices, one from a payer nobody
knows that an operator applies from the exception queue); a service credit from customer
success approved by finance and booked in billing, tax and the ERP; a card dispute lost and
its chargeback booked.

The helpers below (statement_of, open_invoices, charge_of) are also
what the end-to-end tests use to drive the same systems.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
from temporalio.client import Client

from adapters.netsuite import NetSuiteErp
from adapters.storage.cash import SqlCashStore
from adapters.stripe import StripeBilling
from canonical.cash.models import OpenItem, Receipt
from canonical.credits import CreditReason, CreditRequest
from canonical.journal import ChartOfAccounts, invoice_entry
from canonical.models import Account, InvoiceLine
from canonical.money import Money
from sandbox import SandboxControl
from sandbox.bank import combined, exact, partial, unknown_payer
from settings import Settings
from starter import client as o2c
from starter.cash import apply_receipt, import_statement
from starter.credits import start_credit
from starter.demo import Demo, StoryResult
from starter.identity import demo_desk
from workflows.cash import CashResult, InvoiceAmount
from workflows.dispute import DisputeResult, dispute_workflow_id
from workflows.kit.status import Status

ENTITY = "US01"
STATEMENT_FORMAT = "camt.053.001.02"


# -- the systems, as the stories and the end-to-end tests drive them -------------------------


async def open_invoices(
    settings: Settings, billing: StripeBilling, customer: Account, amounts: list[str], *, tag: str
) -> list[str]:
    """Invoices for services in billing, booked in the ERP on the customer's receivable and
    kept in o2c's cash store as open items (what an invoice.finalized event makes of them)."""
    erp = NetSuiteErp(settings.netsuite_base_url, settings.netsuite_token, timeout=settings.http_timeout_seconds)
    store = SqlCashStore(settings.database_url)
    ids = []
    try:
        await erp.upsert_customer(customer, subsidiary="1")
        for n, amount in enumerate(amounts):
            money = Money.of(amount, "USD")
            invoice = await billing.create_proration_invoice(
                account_id=customer.id,
                subscription_id="",
                currency="USD",
                lines=[InvoiceLine(product="services", description="Implementation services", amount=money)],
                description="Implementation services",
                metadata={},
                idempotency_key=f"{tag}-invoice-{n}",
            )
            await erp.post_journal_entry(
                invoice_entry(
                    external_id=f"{tag}-{invoice.id}-invoice",
                    subsidiary="1",
                    posting_date=invoice.created or date.today(),
                    memo=f"Invoice {invoice.id}",
                    revenue=money,
                    tax=Money.zero("USD"),
                    chart=ChartOfAccounts(),
                    invoice_id=invoice.id,
                    customer=customer.id,
                )
            )
            await store.upsert_open_items(
                [
                    OpenItem(
                        invoice_id=invoice.id,
                        number=invoice.number,
                        customer=customer.id,
                        legal_entity=ENTITY,
                        total=money,
                        balance=money,
                        issued_on=invoice.created,
                    )
                ]
            )
            ids.append(invoice.id)
    finally:
        await erp.aclose()
        await store.aclose()
    return ids


async def statement_of(settings: Settings, body: dict[str, Any]) -> bytes:
    """A statement file as the sandbox bank writes it (POST /bank/v1/statements)."""
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(f"{settings.sandbox_url.rstrip('/')}/bank/v1/statements", json=body)
        response.raise_for_status()
        return response.content


def charge_of(control: SandboxControl, invoice_id: str) -> str:
    """The succeeded charge that paid an invoice in the Stripe stand-in."""
    for charge in control.records("stripe", "charge"):
        if charge.get("invoice") == invoice_id and charge.get("status") == "succeeded":
            return str(charge["id"])
    raise LookupError(f"no succeeded charge paid {invoice_id}")


# -- the stories -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementCheck:
    payments: int  # NetSuite customer payments of the statement's receipts, in the customer's name
    paid: int  # invoices paid out of band in billing
    partly: int  # invoices billing reports partly paid


class CashStories:
    def __init__(self, demo: Demo):
        self.demo = demo
        self.client: Client = demo.client
        self.settings: Settings = demo.settings
        self.control: SandboxControl = demo.control
        self.billing: StripeBilling = demo.billing
        self.run_id = demo.run_id
        self.on_story: Callable[[str], None] = demo.on_story

    def customer(self, name: str) -> str:
        return f"cus_demo_{self.run_id}_{name}"

    async def run(self) -> list[StoryResult]:
        return [await self.statement_story(), await self.service_credit_story(), await self.dispute_story()]

    async def statement_story(self) -> StoryResult:
        title = "cash: a camt.053 statement, exact, partial, two invoices, unknown payer applied by an operator"
        self.on_story(title)
        name = "kappa"
        await self.demo.seed(name)
        payer = Account(id=self.customer(name), name=f"{name.title()} Inc")
        tag = f"demo-{self.run_id}-{name}"
        exact_id, partial_id, first_id, second_id, later_id = await open_invoices(
            self.settings, self.billing, payer, ["100.00", "250.00", "120.00", "90.00", "75.00"], tag=tag
        )
        account = f"US-OPS-{self.run_id}"
        entries = [
            exact(exact_id, "100.00", payer=payer.name),
            partial(partial_id, "200.00", payer=payer.name),
            combined([first_id, second_id], "210.00", payer=payer.name),
            # Named per run: once an operator applies it, o2c knows the payer as this run's customer.
            unknown_payer("75.00", payer=f"Northwind Holdings {self.run_id}", remittance="THANK YOU"),
        ]
        data = await statement_of(
            self.settings,
            {
                "format": STATEMENT_FORMAT,
                "date": self.demo.today.isoformat(),
                "file_id": tag,
                "account": account,
                "currency": "USD",
                "opening_balance": "0.00",
                "statement_id": tag,
                "entries": [{**e.to_json(), "bank_reference": f"{tag}-{n + 1}"} for n, e in enumerate(entries)],
            },
        )
        store = SqlCashStore(self.settings.database_url)
        try:
            imported = await import_statement(
                self.client,
                data,
                legal_entity=ENTITY,
                store=store,
                legal_entities=self.settings.legal_entities,
                task_queue=self.settings.task_queue,
                name="the demo's statement",
            )
            [statement] = imported.statements
            workflow_id = statement.workflow_id
            state = await o2c.wait_for_status(self.client, workflow_id, Status.NEEDS_ATTENTION, timeout=180)
            [waiting] = state["waiting"]
            receipt = await store.receipt(waiting["receipt_id"])
            receipts = await store.receipts(statement.statement_id)
        finally:
            await store.aclose()
        assert receipt is not None
        # The operator finds the payer (a new subsidiary of the customer) and applies it.
        await apply_receipt(
            self.client,
            receipt,
            [InvoiceAmount(invoice_id=later_id, amount=Money.of("75.00", "USD"))],
            operator="olga.ops",
            comment="paid by the customer's new subsidiary; remittance advice by email",
        )
        result = await asyncio.wait_for(
            self.client.get_workflow_handle(workflow_id, result_type=CashResult).result(), timeout=180
        )
        check = await self._check(receipts, payer.id, [exact_id, first_id, second_id, later_id], [partial_id])
        rules = ", ".join(f"{n} {rule.replace('_', ' ')}" for rule, n in sorted(result.by_rule.items()))
        return StoryResult(
            story=title,
            workflow_id=workflow_id,
            status=result.status.value,
            outcome=f"{check.payments} payments in NetSuite, {check.paid} invoices paid out of band, {check.partly} partly",
            message=f"{result.message} ({rules}; "
            f"{len(receipts)} receipts of statement {statement.statement_id}; "
            f"the unknown payer's 75.00 applied by olga.ops to {later_id})",
            amount=f"received {statement.total}",
            ui=self.demo.ui(workflow_id),
            expected="4 payments in NetSuite, 4 invoices paid out of band, 1 partly",
            process="cash",
        )

    async def _check(
        self, receipts: list[Receipt], customer: str, paid: list[str], partly: list[str]
    ) -> StatementCheck:
        """What the systems hold now: billing can only mark a whole invoice paid out of band, so a
        part payment shows as what is still open on the invoice's receivable in the ERP."""
        erp = NetSuiteErp(
            self.settings.netsuite_base_url, self.settings.netsuite_token, timeout=self.settings.http_timeout_seconds
        )
        try:
            payments = [await erp.get_customer_payment(f"cash-{r.receipt_id}") for r in receipts]
            still_open = []
            for invoice_id in partly:
                document = await erp.receivable_document(invoice_id, subsidiary="1")
                still_open.append(await erp.open_amount(document) if document else None)
        finally:
            await erp.aclose()
        # The Stripe stand-in's own record says how it was paid: out of band, as o2c marks it.
        in_stripe = {i["id"]: i for i in self.control.records("stripe", "invoice") if i["id"] in paid}
        return StatementCheck(
            payments=sum(1 for p in payments if p is not None and p.customer == customer and p.applications),
            paid=sum(1 for i in in_stripe.values() if i["status"] == "paid" and i.get("paid_out_of_band")),
            partly=sum(1 for amount in still_open if amount is not None and not amount.is_zero),
        )

    async def _booked_invoice(self, name: str, *, payment_method: str = "") -> str:
        """An amendment's invoice, booked by o2c: billing, tax committed, the ERP's entry."""
        await self.demo.seed(name, payment_method=payment_method)
        handle = await o2c.start_amendment(
            self.client, self.demo.request(name, 12), billing=self.billing, task_queue=self.settings.task_queue
        )
        result = await handle.result()
        if result.status != Status.COMPLETED or not result.invoice_id:
            raise RuntimeError(f"the amendment of {name} did not invoice: {result.message}")
        return result.invoice_id

    async def service_credit_story(self) -> StoryResult:
        title = "service credit: SLA breach, finance approves, credit note, tax return, memo, JE"
        self.on_story(title)
        invoice_id = await self._booked_invoice("lambda")
        invoice = await self.billing.get_invoice(invoice_id)
        assert invoice is not None
        # A fifth of the invoice's pre-tax amount, whatever day of the month the demo runs.
        net = invoice.total - invoice.tax if invoice.tax is not None else invoice.total
        credit = net.times(Decimal("0.2"))
        request = CreditRequest(
            credit_id=f"DEMO-{self.run_id}-sla",
            invoice_id=invoice_id,
            reason=CreditReason.SERVICE_CREDIT,
            explanation="SLA breach: 4 hours of downtime on the 3rd",
            requested_by="cora.success",
            amount=credit,
        )
        handle = await start_credit(self.client, request, billing=self.billing, task_queue=self.settings.task_queue)
        await o2c.wait_for_status(self.client, handle.id, Status.AWAITING_APPROVAL, timeout=120)
        await demo_desk(self.settings).decide(
            self.client, handle.id, "fiona.finance", approved=True, comment="outage confirmed by the incident report"
        )
        result = await handle.result()
        documents = (
            f"credit note {result.credit_note}, AvaTax return {result.tax_return}, "
            f"NetSuite memo {result.credit_memo}, JE {result.journal_entry}"
        )
        return StoryResult(
            story=title,
            workflow_id=handle.id,
            status=result.status.value,
            outcome=result.status.value,
            message=f"{result.message}; approved by fiona.finance; {documents}",
            amount=f"credit {result.credited} on invoice {invoice.total}",
            ui=self.demo.ui(handle.id),
            expected="completed",
            process="credit",
        )

    async def dispute_story(self) -> StoryResult:
        title = "dispute: card payment disputed as fraudulent, lost, chargeback booked"
        self.on_story(title)
        name = "mu"
        invoice_id = await self._booked_invoice(name, payment_method="pm_card_visa")
        paid = await self.billing.retry_payment(invoice_id, idempotency_key=f"demo-{self.run_id}-{name}-pay")
        charge = charge_of(self.control, invoice_id)
        dispute = self.control.open_dispute(charge, reason="fraudulent")
        # Stripe's charge.dispute.* webhooks reach the stack's ingress, which starts and signals it.
        workflow_id = dispute_workflow_id(dispute["id"])
        await self.demo._until(workflow_id, lambda s: bool(s.get("funds_withdrawn")) and bool(s.get("evidence_task")))
        self.control.close_dispute(dispute["id"], "lost")
        handle = self.client.get_workflow_handle(workflow_id, result_type=DisputeResult)
        result = await asyncio.wait_for(handle.result(), timeout=180)
        return StoryResult(
            story=title,
            workflow_id=workflow_id,
            status=Status.COMPLETED.value,
            outcome=result.outcome.value,
            message=f"{result.message}; entries {', '.join(result.entries)}",
            amount=f"disputed {paid.amount_paid} of invoice {invoice_id}",
            ui=self.demo.ui(workflow_id),
            expected="lost",
            process="dispute",
        )
