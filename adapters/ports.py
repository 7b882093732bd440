"""The roles o2c needs from the outside world, one Protocol each.

Adapters implement them over a real system's wire format; activities receive them
by injection, so tests can pass in-memory fakes. Every method that creates or
changes something takes an idempotency key that the caller derives from the
workflow ID and the step, never from a clock or a random source.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from canonical.cash.models import (
    BankStatement,
    CashDecision,
    CashMatch,
    OpenItem,
    OpenItemBook,
    QueuedReceipt,
    Receipt,
)
from canonical.credits import CreditNote, CreditNoteOrder, Dispute, Refund, TaxReturnRequest
from canonical.journal import JournalEntry, JournalEntryPage
from canonical.models import (
    Account,
    Address,
    CollectionCase,
    ContractRevenuePage,
    CrmTask,
    Entitlement,
    Invoice,
    InvoiceLine,
    InvoicePage,
    JournalEntryRef,
    Notification,
    PaymentAttempt,
    RevenueSchedule,
    Subscription,
    SubscriptionLine,
    SubscriptionTerm,
    TaxDocument,
    TaxDocumentPage,
)
from canonical.money import Money
from canonical.receivables import CreditMemoPosting, CustomerPayment, CustomerRefundPosting
from canonical.reconciliation import Break, BreakRecord, BreakStatus, HealOrder, KeyRange, RunSummary
from canonical.revenue.posting import PostedLine, RecognitionPage
from canonical.usage.models import Meter, MeterReport, UsageCustomer, UsageRelease, UsageTotal


class BillingPort(Protocol):
    async def get_account(self, account_id: str) -> Account | None: ...

    async def get_subscription(self, subscription_id: str) -> Subscription | None: ...

    async def update_subscription_lines(
        self, subscription_id: str, lines: list[SubscriptionLine], *, idempotency_key: str
    ) -> Subscription:
        """Make the subscription's lines exactly `lines` (items not listed are removed),
        without billing any proration: o2c invoices proration itself."""
        ...

    async def create_proration_invoice(
        self,
        *,
        account_id: str,
        subscription_id: str,
        currency: str,
        lines: list[InvoiceLine],
        description: str,
        metadata: dict[str, str],
        idempotency_key: str,
        billing_account: str = "",
    ) -> Invoice:
        """Create one invoice item per line, one invoice holding them, and finalise it
        (in the legal entity's `billing_account` when one is given)."""
        ...

    async def void_invoice(self, invoice_id: str, *, idempotency_key: str, billing_account: str = "") -> Invoice: ...

    # -- dunning --------------------------------------------------------------------------

    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        """With amount_paid and amount_remaining filled in."""
        ...

    async def retry_payment(self, invoice_id: str, *, idempotency_key: str) -> PaymentAttempt:
        """Try the customer's default payment method for what remains due. A card decline
        is an outcome (PaymentOutcome.DECLINED with its decline code), not an error."""
        ...

    async def cancel_subscription(self, subscription_id: str, *, idempotency_key: str) -> Subscription: ...

    async def mark_uncollectible(self, invoice_id: str, *, idempotency_key: str) -> Invoice: ...

    # -- renewals --------------------------------------------------------------------------

    async def subscriptions_ending(self, start: date, end: date) -> list[Subscription]:
        """Active subscriptions whose term ends in [start, end): the open renewal windows."""
        ...

    async def create_customer(self, account: Account, *, billing_account: str, idempotency_key: str) -> Account:
        """The same customer in another legal entity's billing account; returns it with its new id."""
        ...

    async def create_subscription(
        self, term: SubscriptionTerm, *, billing_account: str, idempotency_key: str
    ) -> Subscription:
        """A subscription for the term that bills its periods from the second one on: o2c
        invoices the first period itself (with tax), like a proration."""
        ...

    async def end_subscription_at(self, subscription_id: str, at: date, *, idempotency_key: str) -> Subscription:
        """Cancel at a future date (the term boundary), so the old term is not billed again."""
        ...

    async def cancel_subscription_end(self, subscription_id: str, *, idempotency_key: str) -> Subscription:
        """Undo end_subscription_at: the subscription runs on."""
        ...

    async def invoice_of_charge(self, charge_id: str) -> str | None:
        """The invoice a charge paid (disputes name the charge, dunning follows invoices)."""
        ...

    # -- reconciliation --------------------------------------------------------------------

    async def list_invoices_page(
        self, *, created_from: date, created_to: date, billing_account: str = "", cursor: str = "", limit: int = 100
    ) -> InvoicePage:
        """Invoices created in [created_from, created_to) in one billing account (the
        platform's when empty), a page at a time, with their tax and metadata."""
        ...

    async def find_invoice(self, invoice_id: str, *, billing_account: str = "") -> Invoice | None:
        """One invoice of a billing account read back by id, whatever day it was created
        (reconciliation matches a document of another period by its key); None when absent."""
        ...


class PaymentsPort(Protocol):
    """Cash, credits and disputes in billing (Stripe). Implemented by the billing adapter;
    `billing_account` as for MeteringPort."""

    async def mark_paid_out_of_band(
        self, invoice_id: str, *, idempotency_key: str, billing_account: str = ""
    ) -> Invoice:
        """The invoice was paid outside billing (a bank transfer o2c applied): `POST
        /v1/invoices/{id}/pay` with `paid_out_of_band=true`. A paid invoice is returned as it is."""
        ...

    async def preview_credit_note(self, order: CreditNoteOrder, *, billing_account: str = "") -> CreditNote:
        """What the credit note would be (`GET /v1/credit_notes/preview`): its total with tax
        and its pre/post-payment split. Creates nothing."""
        ...

    async def create_credit_note(
        self, order: CreditNoteOrder, *, idempotency_key: str, billing_account: str = ""
    ) -> CreditNote:
        """Issue it. On an open invoice it lowers what is due; the post-payment part becomes
        customer credit balance or a refund, by `order.settlement`. Over-crediting is a business error."""
        ...

    async def void_credit_note(
        self, credit_note_id: str, *, idempotency_key: str, billing_account: str = ""
    ) -> CreditNote:
        """The undo of create_credit_note; a void one is returned as it is."""
        ...

    async def create_refund(
        self,
        *,
        charge_id: str,
        amount: Money,
        reason: str,
        metadata: dict[str, str],
        idempotency_key: str,
        billing_account: str = "",
    ) -> Refund:
        """Give money back on a charge (`POST /v1/refunds`); more than is unrefunded is a business error."""
        ...

    async def get_dispute(self, dispute_id: str, *, billing_account: str = "") -> Dispute | None:
        """With the charge's invoice and customer, the fee and the evidence deadline."""
        ...

    async def open_invoices_page(self, *, billing_account: str = "", cursor: str = "", limit: int = 100) -> InvoicePage:
        """Finalised invoices with something still due (status open), a page at a time."""
        ...


class MeteringPort(Protocol):
    """Usage-based billing: meters, metered subscriptions and the drafts they produce (Stripe
    Billing Meters). Implemented by the billing adapter. `billing_account` is the legal
    entity's own billing account (a Stripe Connect account), empty for the platform's."""

    async def list_meters(self) -> list[Meter]:
        """Every meter of the account, active or not."""
        ...

    async def usage_customers(
        self, *, billing_account: str = "", after: str = "", limit: int = 0
    ) -> list[UsageCustomer]:
        """The customers with an active subscription that carries metered prices, with those
        prices, in billing's listing order: those whose subscription comes after the
        subscription `after`, at most `limit` of them (0: every one)."""
        ...

    async def report_usage(self, reports: Sequence[MeterReport], *, billing_account: str = "") -> None:
        """Send meter events (the v2 stream, a session token renewed when it expires, at most
        100 events a request). Each carries its identifier: sending one again counts nothing."""
        ...

    async def metered_quantity(
        self, event_name: str, *, customer: str, start: datetime, end: datetime, billing_account: str = ""
    ) -> int:
        """What billing's meter has counted for the customer in [start, end): the quantity the
        invoice will bill, since a draft is re-quantified only when it is finalised. It lags
        behind what was sent (meter summaries are computed asynchronously)."""
        ...

    async def find_usage_draft(
        self, subscription_id: str, *, period_start: date, period_end: date, billing_account: str = ""
    ) -> Invoice | None:
        """The subscription's invoice that bills usage of [period_start, period_end), in any
        status, with its metered lines (meter, quantity, period); None while billing has none."""
        ...

    async def hold_invoice(self, invoice_id: str, *, billing_account: str = "") -> Invoice:
        """Stop billing finalising the draft on its own (auto_advance=false). Repeating it changes nothing."""
        ...

    async def add_invoice_line(
        self,
        invoice_id: str,
        *,
        customer: str,
        amount: Money,
        description: str,
        metadata: dict[str, str],
        idempotency_key: str,
        billing_account: str = "",
    ) -> Invoice:
        """A line on a draft (negative for a credit); the same key adds it once."""
        ...

    async def remove_invoice_line(self, line_id: str, *, idempotency_key: str, billing_account: str = "") -> None:
        """Take a line o2c added off a draft again (the undo of add_invoice_line)."""
        ...

    async def finalize_invoice(self, invoice_id: str, *, idempotency_key: str, billing_account: str = "") -> Invoice:
        """Finalise a held draft. A draft billing cannot finalise (its tax, its customer) is a
        business error with billing's reason."""
        ...


class UsageStorePort(Protocol):
    """o2c's own database: validated usage, closed periods and what each release billed."""

    async def totals(self, customer: str, period: str) -> list[UsageTotal]:
        """What the accepted events of the period add up to, per meter (late adjustments included)."""
        ...

    async def close_period(self, customer: str, period: str) -> None:
        """From now on an event of the period is late (see LatePolicy). Closing twice changes nothing."""
        ...

    async def reopen_period(self, customer: str, period: str) -> None:
        """The undo of close_period, for a release that rolls back before it billed anything."""
        ...

    async def history(self, customer: str, meter: str, *, before: str, periods: int) -> list[int]:
        """The quantities released for the meter in up to `periods` periods before `before`, oldest first."""
        ...

    async def previous_release(self, customer: str, *, before: str) -> UsageRelease | None: ...

    async def record_release(self, release: UsageRelease) -> None:
        """Insert or replace by workflow id."""
        ...

    async def delete_release(self, workflow_id: str) -> None: ...

    async def releases(
        self, *, legal_entity: str, period: str, cursor: str = "", limit: int = 1000
    ) -> tuple[list[UsageRelease], str]:
        """The releases of an entity's usage period in invoice order, a page at a time; the
        cursor is empty after the last page."""
        ...


class TaxPort(Protocol):
    async def quote(
        self,
        *,
        code: str,
        customer_code: str,
        document_date: date,
        currency: str,
        address: Address,
        lines: list[InvoiceLine],
        company_code: str = "",
    ) -> TaxDocument:
        """Estimate tax without recording anything (an AvaTax SalesOrder), in the legal
        entity's tax company (the adapter's own when empty)."""
        ...

    async def commit(
        self,
        *,
        code: str,
        customer_code: str,
        document_date: date,
        currency: str,
        address: Address,
        lines: list[InvoiceLine],
        company_code: str = "",
    ) -> TaxDocument:
        """Record and commit the tax of an invoice under document `code` (a SalesInvoice).
        Committing the same code again returns the committed document."""
        ...

    async def void(self, *, code: str) -> TaxDocument | None:
        """Void the document with this code, in whichever entity's company holds it; None
        when there is none (nothing to undo)."""
        ...

    async def list_documents_page(
        self, *, company_code: str, date_from: date, date_to: date, cursor: str = "", limit: int = 1000
    ) -> TaxDocumentPage:
        """The recorded tax documents (invoices and returns, not quotes) of a company dated in
        [date_from, date_to), a page at a time."""
        ...

    async def get_document(self, *, code: str) -> TaxDocument | None:
        """The recorded sales invoice under document `code`, whatever its date; None when absent."""
        ...


class TaxReturnsPort(Protocol):
    async def return_invoice(self, request: TaxReturnRequest) -> TaxDocument:
        """Record and commit a ReturnInvoice referencing the original, dated with the
        original's tax date (AvaTax TaxDate override). The same code returns the same document."""
        ...

    async def void_return(self, *, code: str) -> TaxDocument | None:
        """The undo of return_invoice: void the ReturnInvoice with this code (AvaTax voids by
        code and document type, so TaxPort.void, which names a SalesInvoice, would not find
        it). A voided one is returned as it is; None when there is no such return."""
        ...


class ErpPort(Protocol):
    async def post_journal_entry(self, entry: JournalEntry) -> JournalEntryRef:
        """Upsert by the entry's external ID: posting it twice leaves one entry."""
        ...

    async def get_journal_entry(self, external_id: str) -> JournalEntry | None: ...

    async def upsert_customer(self, account: Account, *, subsidiary: str) -> str:
        """Create or update the customer record by external ID (the billing customer id);
        returns the ERP's internal id."""
        ...

    async def upsert_collection_case(self, case: CollectionCase) -> CollectionCase:
        """Create or move the AR collection case with this external ID (stage, status)."""
        ...

    async def list_journal_entries_page(
        self, *, subsidiary: str, date_from: date, date_to: date, cursor: str = "", limit: int = 1000
    ) -> JournalEntryPage:
        """The journal entries of a subsidiary posted in [date_from, date_to), with their
        lines, in internal-id order, a page at a time."""
        ...


class ReceivablesPort(Protocol):
    """The ERP's receivables: payments, credit memos and refunds applied to documents."""

    async def receivable_document(self, invoice_id: str, *, subsidiary: str) -> str | None:
        """The ERP's internal id of the receivable that booked the billing invoice, or None."""
        ...

    async def receivable_documents(self, invoice_ids: list[str], *, subsidiary: str) -> dict[str, str]:
        """receivable_document of many invoices in a few calls; an invoice without one is left out."""
        ...

    async def post_customer_payment(self, payment: CustomerPayment) -> str:
        """Upsert by external id with its apply lines; returns the internal id. Applying more
        than a document's open amount is a business error."""
        ...

    async def get_customer_payment(self, external_id: str) -> CustomerPayment | None: ...

    async def post_credit_memo(self, memo: CreditMemoPosting) -> str:
        """Upsert by external id, applied to `memo.apply_to` for `apply_amount`; internal id."""
        ...

    async def reverse_credit_memo(self, external_id: str) -> None:
        """The undo of post_credit_memo: unapplied and removed. Nothing there is no error."""
        ...

    async def post_customer_refund(self, refund: CustomerRefundPosting) -> str:
        """Upsert by external id; returns the internal id."""
        ...

    async def open_amount(self, erp_document: str) -> Money | None:
        """What is still open on a receivable (or unapplied on a payment or memo)."""
        ...


class CashStorePort(Protocol):
    """o2c's own database: statements and receipts, the open receivables they are matched
    against, what matching decided, and the exception queue of unapplied cash."""

    async def record_statement(self, statement: BankStatement, receipts: list[Receipt]) -> bool:
        """Keep a validated statement and its receipts in one transaction. False when the
        statement (or a receipt's bank reference) was imported before: nothing changes."""
        ...

    async def record_receipt(self, receipt: Receipt) -> bool:
        """A receipt that came alone (a Stripe payment); False when it is known already."""
        ...

    async def receipts(self, statement_id: str, *, after: str = "", limit: int = 500) -> list[Receipt]:
        """A statement's receipts in receipt id order, after `after`."""
        ...

    async def receipt(self, receipt_id: str) -> Receipt | None: ...

    async def upsert_open_items(self, items: list[OpenItem]) -> None:
        """Invoices billing finalised (their balance as billing reports it)."""
        ...

    async def open_items(self, *, customer: str = "", invoice_refs: list[str] = ()) -> list[OpenItem]:  # type: ignore[assignment]
        """Open items of a customer, or those an invoice id or number names (any customer)."""
        ...

    async def book_for(self, receipts: list[Receipt]) -> OpenItemBook:
        """Everything matching these receipts may need, read at once (see OpenItemBook)."""
        ...

    async def apply_matches(self, matches: list[CashMatch]) -> list[CashMatch]:
        """Record what matching decided and lower the open items' balances, in one
        transaction, each receipt once: a receipt matched before keeps its first match
        (which is returned in its place). An application above an item's balance (a race
        with another receipt) is refused whole: the receipt is returned unmatched."""
        ...

    async def match_of(self, receipt_id: str) -> CashMatch | None: ...

    async def record_decision(self, decision: CashDecision) -> CashMatch:
        """Apply or refund a queued receipt (balances lowered, the queue entry closed);
        a second decision on the same receipt is refused (ValueError)."""
        ...

    async def queue(
        self, *, legal_entity: str = "", as_of: date | None = None, limit: int = 200
    ) -> list[QueuedReceipt]:
        """Receipts with cash still unapplied, oldest first, with their age and suggestions."""
        ...

    async def unapplied_total(self, legal_entity: str, currency: str) -> Money: ...

    async def card_attempts(self, card: str, *, since: datetime) -> int:
        """Payment attempts recorded on a card since `since` (all invoices together)."""
        ...

    async def reserve_card_attempt(self, card: str, attempt_key: str, *, at: datetime, limit: int) -> bool:
        """Record one attempt on the card if it stays within `limit` attempts in the 30 days
        before `at`; True when recorded (or recorded before under the same key)."""
        ...


class EntitlementPort(Protocol):
    async def set_seats(self, *, account_id: str, product: str, seats: int, idempotency_key: str) -> Entitlement: ...

    async def set_restriction(self, *, account_id: str, restricted: bool, idempotency_key: str) -> None:
        """Restricted: no expansion, existing access kept. Lifting it restores normal service."""
        ...


class CrmPort(Protocol):
    async def flag_account(self, account_id: str, *, flag: str, on: bool) -> None:
        """Set or clear a flag on the CRM account (a PATCH: repeating it changes nothing)."""
        ...

    async def create_task(self, task: CrmTask, *, idempotency_key: str) -> str:
        """Open a task for the account owner; the same key opens it once. Returns its id."""
        ...

    async def update_receivables(self, account_id: str, *, open_balance: Money, last_payment_on: date | None) -> None:
        """Write the account's receivables fields (open balance, last payment date): a PATCH."""
        ...


class NotificationPort(Protocol):
    async def send(self, notification: Notification, *, idempotency_key: str) -> str:
        """Queue a message; the same key sends it once. Returns the message id."""
        ...


class RevenueSchedulePort(Protocol):
    """o2c's own database: revenue schedules as computed, for finance to query."""

    async def save_schedule(self, schedule: RevenueSchedule) -> None:
        """Insert or replace by schedule_id (saving twice keeps one)."""
        ...

    async def delete_schedule(self, schedule_id: str) -> None: ...

    async def get_schedule(self, schedule_id: str) -> RevenueSchedule | None: ...

    async def save_schedules(self, schedules: list[RevenueSchedule], *, delete: Sequence[str] = ()) -> None:
        """Save these and delete those in one transaction (a modification replaces a
        contract's schedules at once)."""
        ...

    async def schedules_of_contract(self, contract_id: str, *, open_on: date | None = None) -> list[RevenueSchedule]:
        """The contract's schedules; with `open_on`, only those still recognising on or after it."""
        ...

    async def revenue_in_period(
        self, *, legal_entity: str, period: str, cursor: str = "", limit: int = 1000
    ) -> ContractRevenuePage:
        """What the schedules of an entity recognise in a period (YYYY-MM), per contract,
        in contract order, a page at a time."""
        ...

    async def schedules_of_entity(self, legal_entity: str) -> list[RevenueSchedule]:
        """Every schedule an entity books (for the waterfall)."""
        ...

    async def recognition_of_entity(
        self, *, legal_entity: str, through: str, cursor: str = "", limit: int = 1000
    ) -> RecognitionPage:
        """What an entity's schedules recognise per month (up to `through`, YYYY-MM),
        obligation and currency, usage left out, a page at a time."""
        ...


class RevenuePostingStorePort(Protocol):
    """o2c's own database: the lines of every revenue entry o2c posted to a ledger."""

    async def record_posting(self, lines: list[PostedLine]) -> None:
        """Keep the lines of one posted entry; recording it again changes nothing."""
        ...

    async def postings_of_entity(self, legal_entity: str, *, through: str = "") -> list[PostedLine]:
        """The lines of the entity's revenue entries, of months up to `through` when given."""
        ...

    async def posting(self, external_id: str) -> list[PostedLine]:
        """The lines recorded under one entry's reference."""
        ...


class ReconciliationStorePort(Protocol):
    """o2c's own database: reconciliation runs, the facts a run stages, and its breaks."""

    async def open_run(
        self,
        *,
        run_id: str,
        workflow_id: str,
        legal_entity: str,
        period: str,
        started_at: datetime,
        settings: dict[str, Any],
    ) -> None: ...

    async def stage(self, run_id: str, system: str, facts: Iterable[tuple[str, str, str]]) -> None:
        """(record_id, match_key, payload) facts; staging the same record again replaces it."""
        ...

    async def set_counts(self, run_id: str, **counts: int) -> None: ...

    async def plan_batches(self, run_id: str, size: int) -> list[KeyRange]: ...

    async def staged(self, run_id: str, keys: KeyRange) -> list[tuple[str, str, str]]:
        """(match key, system, payload) in key order."""
        ...

    async def record_breaks(
        self, run_id: str, *, legal_entity: str, period: str, found: list[tuple[str, Break, BreakStatus]]
    ) -> list[int]: ...

    async def resolve_breaks(self, updates: list[tuple[int, BreakStatus, str]]) -> None: ...

    async def heal_orders(
        self, run_id: str, *, status: BreakStatus, after: int = 0, limit: int = 500
    ) -> list[HealOrder]: ...

    async def heal_total(self, run_id: str, status: BreakStatus) -> list[tuple[int, Money]]: ...

    async def move_breaks(
        self, run_id: str, *, from_status: BreakStatus, to_status: BreakStatus, resolution: str
    ) -> int: ...

    async def close_run(self, run_id: str) -> RunSummary:
        """Settle earlier runs' breaks; the run needs attention while a break of it is open."""
        ...

    async def run(self, run_id: str) -> RunSummary | None: ...

    async def runs(self, *, legal_entity: str = "", period: str = "", limit: int = 50) -> list[RunSummary]: ...

    async def breaks_of_run(self, run_id: str, *, status: str = "") -> list[BreakRecord]: ...
