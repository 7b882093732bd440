"""Typed client functions for cash application: import a bank statement, take a Stripe receipt,
and answer the receipts that wait in the cash exception queue.

A statement is read and validated whole before anything is kept (well-formed, balances add
up, BAI2 control totals): a bad file is refused with the line and the reason, and nothing is
stored and no workflow starts. A good one is stored with its receipts in one transaction and
applied by `cash-<statement id>`; importing it again finds the same statement and the same
workflow, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from adapters.bank import MAX_FILE_BYTES, StatementError, read_statements, receipts_of
from adapters.errors import BusinessError, IntegrationBug
from adapters.ports import BillingPort, CashStorePort
from canonical.cash.models import BankStatement, OpenItem, QueuedReceipt, Receipt
from canonical.journal import ChartOfAccounts
from canonical.models import LegalEntity, receivables_refusal, unknown_entity
from canonical.money import Money
from workflows.cash import (
    ApplyReceipt,
    CashApplicationInput,
    CashApplicationWorkflow,
    CashResult,
    InvoiceAmount,
    RecordedCashDecision,
    RefundReceipt,
    cash_workflow_id,
)
from workflows.kit.status import CUSTOMER, PROCESS, STATUS, Status

MAX_STATEMENT_BYTES = MAX_FILE_BYTES


class StatementRefused(ValueError):
    """A statement file o2c will not import: every problem with its line, nothing kept."""

    def __init__(self, problems: list[tuple[int, str]], name: str = "the file"):
        self.problems = problems
        self.name = name
        shown = "; ".join(f"line {line}: {reason}" if line else reason for line, reason in problems[:20])
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        super().__init__(f"{name} refused, nothing imported: {shown}{more}")


@dataclass(frozen=True)
class ImportedStatement:
    statement_id: str
    workflow_id: str
    receipts: int
    total: Money
    new: bool  # False: the statement was imported before; this is the same statement


@dataclass(frozen=True)
class ImportResult:
    statements: list[ImportedStatement] = field(default_factory=list)


def entity_named(code: str, entities: list[LegalEntity]) -> LegalEntity:
    for entity in entities:
        if entity.code == code:
            return entity
    raise StatementRefused([(0, unknown_entity(code, entities))])


def read_bank_file(
    data: bytes, *, legal_entity: LegalEntity, name: str = "the file"
) -> list[tuple[BankStatement, list[Receipt]]]:
    """Parse and validate the whole file; StatementRefused with every problem otherwise."""
    try:
        statements = read_statements(data)
    except StatementError as bad:
        raise StatementRefused([(bad.line, bad.reason)], name) from None
    if not statements:
        raise StatementRefused([(0, "the file holds no statement")], name)
    read = []
    problems: list[tuple[int, str]] = []
    for statement in statements:
        if statement.currency != legal_entity.functional_currency:
            # unverified: an entity may keep accounts in other currencies; refused until configured.
            problems.append(
                (
                    0,
                    f"statement {statement.statement_id} is in {statement.currency}; "
                    f"{legal_entity.code} keeps its accounts in {legal_entity.functional_currency}",
                )
            )
            continue
        read.append((statement, receipts_of(statement, legal_entity=legal_entity.code)))
    if problems:
        raise StatementRefused(problems, name)
    return read


async def import_statement(
    client: Client,
    data: bytes,
    *,
    legal_entity: str,
    store: CashStorePort,
    legal_entities: list[LegalEntity],
    chart: ChartOfAccounts | None = None,
    task_queue: str = "o2c",
    name: str = "the file",
) -> ImportResult:
    """Validate the file, keep its statements and receipts, and start `cash-<statement id>` for
    each. A statement imported before keeps its first import and its workflow."""
    entity = entity_named(legal_entity, legal_entities)
    refusal = receivables_refusal(entity)
    if refusal:
        raise StatementRefused([(0, refusal)])
    read = read_bank_file(data, legal_entity=entity, name=name)
    imported = []
    for statement, receipts in read:
        new = await store.record_statement(statement, receipts)
        total = Money.zero(statement.currency)
        for r in receipts:
            total += r.amount
        handle = await start_cash_application(
            client,
            CashApplicationInput(
                statement_id=statement.statement_id,
                legal_entity=entity.code,
                chart=chart or ChartOfAccounts(),
                legal_entities=legal_entities,
            ),
            task_queue=task_queue,
        )
        imported.append(
            ImportedStatement(
                statement_id=statement.statement_id, workflow_id=handle.id, receipts=len(receipts), total=total, new=new
            )
        )
    return ImportResult(statements=imported)


async def take_receipt(
    client: Client,
    receipt: Receipt,
    *,
    store: CashStorePort,
    legal_entities: list[LegalEntity],
    chart: ChartOfAccounts | None = None,
    task_queue: str = "o2c",
    billing: BillingPort | None = None,
) -> str:
    """A receipt that came alone (a Stripe payment): kept once, applied by `cash-<receipt id>`.
    With `billing`, an invoice the payment names that o2c's store does not know yet is read
    from billing first, so the payment can be matched to it. A receipt of an entity whose ERP
    o2c posts no payments in is kept and logged, and no workflow starts: "" is returned."""
    entity = next((e for e in legal_entities if e.code == receipt.legal_entity), None)
    refusal = receivables_refusal(entity) if entity else ""
    if refusal:
        await store.record_receipt(receipt)
        structlog.get_logger("o2c.cash").warning("receipt kept, not applied", receipt=receipt.receipt_id, why=refusal)
        return ""
    if billing is not None and receipt.invoice_hint:
        await learn_invoice(receipt, store=store, billing=billing)
    await store.record_receipt(receipt)
    handle = await start_cash_application(
        client,
        CashApplicationInput(
            receipt_id=receipt.receipt_id,
            legal_entity=receipt.legal_entity,
            chart=chart or ChartOfAccounts(),
            legal_entities=legal_entities,
        ),
        task_queue=task_queue,
        customer=receipt.customer_hint,
    )
    return handle.id


async def learn_invoice(receipt: Receipt, *, store: CashStorePort, billing: BillingPort) -> None:
    """Keep the invoice a card payment paid as an open item, as it stood before the payment:
    billing reports it paid already (the payment event comes after), so its balance then was
    what the payment and what is still due add up to. The store only ever lowers a balance,
    so an invoice it knows is left as it is."""
    if await store.open_items(invoice_refs=[receipt.invoice_hint]):
        return
    try:
        invoice = await billing.get_invoice(receipt.invoice_hint)
    except (BusinessError, IntegrationBug):
        return  # billing will not say (another account's invoice): matching leaves it to a person
    if invoice is None or invoice.currency != receipt.amount.currency:
        return  # matching says so: the receipt waits for a person with the reason
    remaining = invoice.amount_remaining or Money.zero(invoice.currency)
    before = min(invoice.total, max(remaining + receipt.amount, Money.zero(invoice.currency)))
    await store.upsert_open_items(
        [
            OpenItem(
                invoice_id=invoice.id,
                number=invoice.number,
                customer=invoice.account_id,
                legal_entity=receipt.legal_entity,
                total=invoice.total,
                balance=before,
                issued_on=invoice.created,
            )
        ]
    )


async def start_cash_application(
    client: Client, input: CashApplicationInput, *, task_queue: str = "o2c", customer: str = ""
) -> WorkflowHandle[CashApplicationWorkflow, CashResult]:
    """`cash-<statement id>` (or `cash-<receipt id>`): a second start lands on the workflow that
    has it, running or finished."""
    workflow_id = cash_workflow_id(statement_id=input.statement_id, receipt_id=input.receipt_id)
    attributes = [SearchAttributePair(PROCESS, "cash"), SearchAttributePair(STATUS, Status.RUNNING.value)]
    if customer:
        attributes.append(SearchAttributePair(CUSTOMER, customer))
    try:
        return await client.start_workflow(
            CashApplicationWorkflow.run,
            input,
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(attributes),
        )
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle_for(CashApplicationWorkflow.run, workflow_id)


def workflow_of(receipt: Receipt) -> str:
    """The cash application a receipt waits in."""
    return cash_workflow_id(statement_id=receipt.statement_id, receipt_id=receipt.receipt_id)


async def apply_receipt(
    client: Client, receipt: Receipt, invoices: list[InvoiceAmount], *, operator: str, comment: str = ""
) -> RecordedCashDecision:
    """Apply a queued receipt to invoices (an amount each, or what is due on it). Refused with
    the reason, as WorkflowUpdateFailedError, when it does not wait or the amounts do not fit."""
    return await client.get_workflow_handle_for(CashApplicationWorkflow.run, workflow_of(receipt)).execute_update(
        CashApplicationWorkflow.apply_receipt,
        ApplyReceipt(receipt_id=receipt.receipt_id, invoices=invoices, operator=operator, comment=comment),
    )


async def refund_receipt(
    client: Client, receipt: Receipt, *, amount: Money | None, operator: str, reason: str
) -> RecordedCashDecision:
    """Give a queued receipt's unapplied cash (or `amount` of it) back to the payer."""
    return await client.get_workflow_handle_for(CashApplicationWorkflow.run, workflow_of(receipt)).execute_update(
        CashApplicationWorkflow.refund_receipt,
        RefundReceipt(receipt_id=receipt.receipt_id, amount=amount, operator=operator, comment=reason),
    )


async def cash_queue(store: CashStorePort, *, legal_entity: str = "", limit: int = 200) -> list[QueuedReceipt]:
    """Receipts with cash unapplied, oldest first, each with the workflow it waits in."""
    return [
        q if q.workflow_id else q.model_copy(update={"workflow_id": workflow_of(q.receipt)})
        for q in await store.queue(legal_entity=legal_entity, limit=limit)
    ]
