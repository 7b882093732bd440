"""Cash application: o2c's cash store, matching, and the receipts' postings in the ERP and billing.

Each activity is one port call, with exceptions made for throughput and said so where they
are: matching a batch reads the store, runs the canonical matching and records it in one go
(the store call that fills the book exists for exactly that); posting a batch, marking its
invoices paid, updating its customers in the CRM and telling its invoices' dunnings loop
over their items with bounded concurrency, heartbeating as they go. Every posting is an
upsert by an external id derived from the receipt, and every dunning event carries its own
id, so a retry of a whole batch changes nothing twice.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from pydantic import ConfigDict
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from activities.errors import BUG, FIXABLE, classified, idempotency_key, to_application_error
from adapters.errors import AdapterError, BusinessError, TransientError
from adapters.ports import CashStorePort, CrmPort, ErpPort, PaymentsPort, ReceivablesPort
from canonical.cash.matching import match_statement
from canonical.cash.models import (
    CashDecision,
    CashMatch,
    ExceptionKind,
    OpenItem,
    OpenItemBook,
    Receipt,
    ReceiptSource,
)
from canonical.credits import Refund
from canonical.journal import ChartOfAccounts, JournalEntry, JournalLine
from canonical.models import Invoice, JournalEntryRef, LegalEntity, Model, PaymentEvent
from canonical.money import Money, total
from canonical.receivables import AppliedDocument, CustomerPayment, CustomerRefundPosting

Matcher = Callable[[list[Receipt], OpenItemBook], list[CashMatch]]
HEARTBEAT_EVERY = 50
# A batch makes hundreds of calls; retried whole on any one transient failure, a batch would
# hardly ever finish while a system fails one call in a few hundred. So each call is first
# retried on its own (its idempotency key makes that safe), and only one that keeps failing
# sends the batch back to Temporal's retries.
CALL_ATTEMPTS = 4


def payment_external_id(receipt_id: str) -> str:
    return f"cash-{receipt_id}"


def suspense_external_id(receipt_id: str) -> str:
    return f"cash-{receipt_id}-suspense"


def in_suspense(match: CashMatch) -> bool:
    """Cash that posts to suspense rather than to a customer: from nobody known, or received by
    one entity for another entity's invoice (the customer may not exist in this subsidiary)."""
    return not match.customer or match.exception == ExceptionKind.CROSS_ENTITY


def cash_account(receipt: Receipt, chart: ChartOfAccounts) -> str:
    """Bank receipts are in the bank account; Stripe's are in transit in its clearing account."""
    return chart.cash if receipt.source == ReceiptSource.STRIPE else chart.bank


def suspense_entry(receipt: Receipt, *, subsidiary: str, chart: ChartOfAccounts) -> JournalEntry:
    """Cash from nobody known: Dr cash / Cr unapplied receipts, until a person applies it."""
    return JournalEntry(
        external_id=suspense_external_id(receipt.receipt_id),
        subsidiary=subsidiary,
        currency=receipt.amount.currency,
        posting_date=receipt.value_date,
        memo=f"Unapplied receipt {receipt.bank_reference} from {receipt.payer_name or 'an unknown payer'}",
        lines=[
            JournalLine(account=cash_account(receipt, chart), debit=receipt.amount, memo=receipt.receipt_id),
            JournalLine(account=chart.unapplied_receipts, credit=receipt.amount, memo=receipt.receipt_id),
        ],
    )


# -- inputs and results ------------------------------------------------------------------------


class MatchBatch(Model):
    """A statement's next receipts after `after`, or the one receipt that came alone."""

    statement_id: str = ""
    receipt_id: str = ""
    after: str = ""
    limit: int = 500


class MatchedBatch(Model):
    receipts: list[Receipt] = []
    matches: list[CashMatch] = []
    # What is still due on every invoice the batch applied cash to, after it did.
    balances: dict[str, Money] = {}
    next_after: str = ""  # empty: this was the last batch


class PostBatch(Model):
    receipts: list[Receipt]
    matches: list[CashMatch]
    entity: LegalEntity
    chart: ChartOfAccounts = ChartOfAccounts()
    concurrency: int = 16


class PostedBatch(Model):
    payments: dict[str, str] = {}  # receipt id -> the ERP's internal id of its customer payment
    suspense: dict[str, str] = {}  # receipt id -> the internal id of its suspense entry


class PostPayment(Model):
    """One customer payment with every application the receipt has (an upsert: re-posting
    it with more apply lines is how an operator's decision reaches the ERP)."""

    receipt: Receipt
    customer: str
    applications: list[AppliedDocument] = []
    entity: LegalEntity
    chart: ChartOfAccounts = ChartOfAccounts()


class ReceivableDocuments(Model):
    invoice_ids: list[str]
    subsidiary: str


class PaidOutOfBand(Model):
    invoice_ids: list[str]
    billing_account: str = ""
    concurrency: int = 16


class CreateRefund(Model):
    receipt: Receipt
    amount: Money
    reason: str
    metadata: dict[str, str] = {}
    step: str
    billing_account: str = ""


class CustomerBalances(Model):
    """Per customer touched, the date of their latest payment among those just applied."""

    model_config = ConfigDict(frozen=True)

    last_payment_on: dict[str, date]
    currency: str
    concurrency: int = 16


class OpenItemsOf(Model):
    invoice_refs: list[str]


class DunningEvent(Model):
    workflow_id: str  # the invoice's dunning, `dunning-<invoice id>`
    event: PaymentEvent


class DunningEvents(Model):
    """A batch's payment events for the dunnings of the invoices it paid, sent as `signal`."""

    signal: str
    events: list[DunningEvent]
    concurrency: int = 32


def _fixable(message: str, system: str) -> ApplicationError:
    return ApplicationError(message, {"system": system, "code": "", "status": None}, type=FIXABLE, non_retryable=True)


async def bounded(concurrency: int, jobs: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Run the jobs at most `concurrency` at once, heartbeating every `HEARTBEAT_EVERY` jobs
    ended (a heartbeat a job costs more than a fast job), each retried on its own while it
    fails transiently (see CALL_ATTEMPTS); every job runs even when some fail (their
    exceptions are returned in their place)."""
    gate = asyncio.Semaphore(max(1, concurrency))
    done = [0]

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            try:
                async for attempt in AsyncRetrying(
                    retry=retry_if_exception_type(TransientError),
                    stop=stop_after_attempt(CALL_ATTEMPTS),
                    wait=wait_random_exponential(multiplier=0.2, max=3),
                    reraise=True,
                ):
                    with attempt:
                        return await job()
            finally:
                done[0] += 1
                if done[0] % HEARTBEAT_EVERY == 0:
                    activity.heartbeat(done[0])

    return await asyncio.gather(*(one(job) for job in jobs), return_exceptions=True)


def raise_first(outcomes: list[Any], what: str) -> None:
    """After a batch ran whole: a transient failure first (Temporal retries the batch, and the
    upserts make that safe), then a refusal a person must look at, then anything else."""
    failures = [x for x in outcomes if isinstance(x, BaseException)]
    if not failures:
        return
    transient = [x for x in failures if isinstance(x, TransientError)]
    if transient:
        raise to_application_error(transient[0]) from transient[0]
    refused = [x for x in failures if isinstance(x, BusinessError)]
    if refused:
        reasons = "; ".join(x.message for x in refused[:5])
        more = f" (and {len(refused) - 5} more)" if len(refused) > 5 else ""
        raise _fixable(f"{len(refused)} {what} refused: {reasons}{more}", refused[0].system)
    other = failures[0]
    if isinstance(other, AdapterError):
        raise to_application_error(other) from other
    raise other


class CashActivities:
    def __init__(
        self,
        store: CashStorePort,
        payments: PaymentsPort,
        receivables: ReceivablesPort,
        erp: ErpPort,
        crm: CrmPort,
        *,
        matcher: Matcher | None = None,
    ):
        self.store = store
        self.payments = payments
        self.receivables = receivables
        self.erp = erp
        self.crm = crm
        self.matcher: Matcher = matcher or match_statement

    # -- the store and matching ----------------------------------------------------------------

    @activity.defn(name="cash.match_batch")
    @classified
    async def match_batch(self, request: MatchBatch) -> MatchedBatch:
        """Read the batch, read everything matching may need at once, match, record: the
        store keeps a receipt's first match, so a retry returns what the first attempt decided."""
        if request.receipt_id:
            one = await self.store.receipt(request.receipt_id)
            receipts = [one] if one is not None else []
        else:
            receipts = await self.store.receipts(request.statement_id, after=request.after, limit=request.limit)
        if not receipts:
            return MatchedBatch()
        activity.heartbeat(f"matching {len(receipts)} receipts")
        book = await self.store.book_for(receipts)
        matches = await self.store.apply_matches(self.matcher(receipts, book))
        touched = sorted({a.invoice_id for m in matches for a in m.applications})
        balances = (
            {x.invoice_id: x.balance for x in await self.store.open_items(invoice_refs=touched)} if touched else {}
        )
        full = not request.receipt_id and len(receipts) == request.limit
        return MatchedBatch(
            receipts=receipts, matches=matches, balances=balances, next_after=receipts[-1].receipt_id if full else ""
        )

    @activity.defn(name="cash.open_items")
    @classified
    async def open_items(self, request: OpenItemsOf) -> list[OpenItem]:
        return await self.store.open_items(invoice_refs=request.invoice_refs)

    @activity.defn(name="cash.receipt")
    @classified
    async def receipt(self, receipt_id: str) -> Receipt | None:
        return await self.store.receipt(receipt_id)

    @activity.defn(name="cash.match_of")
    @classified
    async def match_of(self, receipt_id: str) -> CashMatch | None:
        return await self.store.match_of(receipt_id)

    @activity.defn(name="cash.record_decision")
    @classified
    async def record_decision(self, decision: CashDecision) -> CashMatch:
        try:
            return await self.store.record_decision(decision)
        except ValueError as refused:  # a second decision on the receipt
            raise ApplicationError(str(refused), type="BusinessError", non_retryable=True) from refused

    # -- the ERP -------------------------------------------------------------------------------

    @activity.defn(name="cash.post_batch")
    async def post_batch(self, request: PostBatch) -> PostedBatch:
        """One customer payment per receipt with a known customer, applied to the invoices'
        receivables; a suspense entry for each of the others. Bounded concurrency."""
        receipts = {r.receipt_id: r for r in request.receipts}
        subsidiary = request.entity.erp_subsidiary
        # The receivables matching did not know, asked of the ERP for the whole batch at once
        # (one query per invoice was most of a batch's ERP time).
        missing = sorted(
            {
                a.invoice_id
                for m in request.matches
                if m.receipt_id in receipts and not in_suspense(m)
                for a in m.applications
                if not a.erp_document
            }
        )
        try:
            documents = await self.receivables.receivable_documents(missing, subsidiary=subsidiary) if missing else {}
        except AdapterError as failed:
            raise to_application_error(failed) from failed

        async def post(match: CashMatch) -> tuple[str, str, str]:
            receipt = receipts[match.receipt_id]
            if in_suspense(match):
                entry = suspense_entry(receipt, subsidiary=subsidiary, chart=request.chart)
                ref = await self.erp.post_journal_entry(entry)
                return "suspense", receipt.receipt_id, ref.internal_id
            applied = []
            for a in match.applications:
                doc = a.erp_document or documents.get(a.invoice_id)
                if not doc:
                    raise BusinessError(
                        "erp",
                        f"invoice {a.invoice_id} has no receivable in the ERP (subsidiary {subsidiary}); "
                        "book the invoice, then retry",
                        code="no_receivable",
                        fixable=True,
                    )
                applied.append(AppliedDocument(erp_document=doc, invoice_id=a.invoice_id, amount=a.amount))
            payment = self._payment(receipt, match.customer, applied, request.entity, request.chart)
            return "payment", receipt.receipt_id, await self.receivables.post_customer_payment(payment)

        outcomes = await bounded(
            request.concurrency, [functools.partial(post, m) for m in request.matches if m.receipt_id in receipts]
        )
        raise_first(outcomes, "postings")
        posted = PostedBatch()
        for kind, receipt_id, internal_id in outcomes:
            (posted.payments if kind == "payment" else posted.suspense)[receipt_id] = internal_id
        return posted

    @staticmethod
    def _payment(
        receipt: Receipt, customer: str, applied: list[AppliedDocument], entity: LegalEntity, chart: ChartOfAccounts
    ) -> CustomerPayment:
        return CustomerPayment(
            external_id=payment_external_id(receipt.receipt_id),
            customer=customer,
            subsidiary=entity.erp_subsidiary,
            amount=receipt.amount,
            tran_date=receipt.value_date,
            account=cash_account(receipt, chart),
            applications=applied,
            memo=f"Receipt {receipt.bank_reference}" + (f" from {receipt.payer_name}" if receipt.payer_name else ""),
            receipt_id=receipt.receipt_id,
        )

    @activity.defn(name="cash.receivable_documents")
    @classified
    async def receivable_documents(self, request: ReceivableDocuments) -> dict[str, str]:
        """The ERP's receivable of each invoice; an invoice without one is left out."""
        return await self.receivables.receivable_documents(request.invoice_ids, subsidiary=request.subsidiary)

    @activity.defn(name="cash.post_payment")
    @classified
    async def post_payment(self, request: PostPayment) -> str:
        payment = self._payment(request.receipt, request.customer, request.applications, request.entity, request.chart)
        return await self.receivables.post_customer_payment(payment)

    @activity.defn(name="cash.post_journal_entry")
    @classified
    async def post_journal_entry(self, entry: JournalEntry) -> JournalEntryRef:
        return await self.erp.post_journal_entry(entry)

    @activity.defn(name="cash.post_customer_refund")
    @classified
    async def post_customer_refund(self, refund: CustomerRefundPosting) -> str:
        return await self.receivables.post_customer_refund(refund)

    # -- billing ---------------------------------------------------------------------------------

    @activity.defn(name="cash.mark_paid_out_of_band")
    async def mark_paid_out_of_band(self, request: PaidOutOfBand) -> list[Invoice]:
        """Invoices a bank receipt settled, marked paid in billing (each under its own key)."""

        async def mark(invoice_id: str) -> Invoice:
            return await self.payments.mark_paid_out_of_band(
                invoice_id,
                idempotency_key=idempotency_key(f"paid-out-of-band-{invoice_id}"),
                billing_account=request.billing_account,
            )

        outcomes = await bounded(request.concurrency, [functools.partial(mark, i) for i in request.invoice_ids])
        raise_first(outcomes, "invoices marked paid")
        return list(outcomes)

    @activity.defn(name="cash.create_refund")
    @classified
    async def create_refund(self, request: CreateRefund) -> Refund:
        return await self.payments.create_refund(
            charge_id=request.receipt.charge_id or request.receipt.bank_reference,
            amount=request.amount,
            reason=request.reason,
            metadata=request.metadata,
            idempotency_key=idempotency_key(request.step),
            billing_account=request.billing_account,
        )

    # -- the dunnings -------------------------------------------------------------------------

    @activity.defn(name="cash.tell_dunnings")
    async def tell_dunnings(self, request: DunningEvents) -> int:
        """Signal each invoice's dunning with its payment event, from one activity a batch
        rather than one workflow command an invoice (a batch's history stays small, and most
        invoices paid are not in dunning at all). An invoice without a running dunning
        answers NOT_FOUND, which is fine. Returns how many dunnings heard of a payment."""
        client = activity.client()

        async def tell(one: DunningEvent) -> bool:
            try:
                await client.get_workflow_handle(one.workflow_id).signal(request.signal, one.event)
            except RPCError as failed:
                if failed.status == RPCStatusCode.NOT_FOUND:
                    return False  # nobody dunning the invoice, or its dunning has ended
                if failed.status in (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.PERMISSION_DENIED):
                    raise ApplicationError(str(failed), type=BUG, non_retryable=True) from failed
                raise  # unavailable, deadline: the batch is retried, the event ids dedupe
            return True

        outcomes = await bounded(request.concurrency, [functools.partial(tell, e) for e in request.events])
        failures = [x for x in outcomes if isinstance(x, BaseException)]
        if failures:
            raise failures[0]
        return sum(1 for x in outcomes if x)

    # -- the CRM ---------------------------------------------------------------------------------

    @activity.defn(name="cash.update_receivables")
    async def update_receivables(self, request: CustomerBalances) -> int:
        """Each customer's open balance, from o2c's store, and latest payment date on the CRM account."""

        async def update(customer: str, paid_on: date) -> None:
            items = await self.store.open_items(customer=customer)
            balance = total((x.balance for x in items if x.balance.currency == request.currency), request.currency)
            await self.crm.update_receivables(customer, open_balance=balance, last_payment_on=paid_on)

        outcomes = await bounded(
            request.concurrency, [functools.partial(update, c, d) for c, d in sorted(request.last_payment_on.items())]
        )
        raise_first(outcomes, "CRM updates")
        return len(outcomes)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.match_batch,
            self.open_items,
            self.receipt,
            self.match_of,
            self.record_decision,
            self.post_batch,
            self.receivable_documents,
            self.post_payment,
            self.post_journal_entry,
            self.post_customer_refund,
            self.mark_paid_out_of_band,
            self.create_refund,
            self.update_receivables,
            self.tell_dunnings,
        ]
