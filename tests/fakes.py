"""In-memory systems behind the ports, for workflow tests on the time-skipping server.

They keep idempotency the way the real systems do (same key, same result, nothing new)
and record every call in one shared log, so tests can assert order and counts.
"""

from __future__ import annotations

import calendar
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from adapters.errors import AdapterError, BusinessError
from adapters.storage.reconciliation import SqlReconciliationStore
from canonical.journal import JournalEntry, JournalEntryPage
from canonical.models import (
    Account,
    Address,
    CollectionCase,
    ContractRevenue,
    ContractRevenuePage,
    CrmTask,
    Entitlement,
    Invoice,
    InvoiceLine,
    InvoicePage,
    JournalEntryRef,
    Notification,
    PaymentAttempt,
    PaymentOutcome,
    RevenueSchedule,
    Subscription,
    SubscriptionLine,
    TaxDocument,
    TaxDocumentPage,
    TaxLine,
)
from canonical.money import Money, total
from canonical.usage.booking import USAGE_OBLIGATION
from canonical.usage.models import (
    Meter,
    MeterReport,
    UsageCustomer,
    UsageRelease,
    UsageTotal,
    period_end,
    period_of,
    period_start,
)


@dataclass
class Ledger:
    """The call log shared by all fakes, and injected failures by method name."""

    calls: list[str] = field(default_factory=list)
    failures: dict[str, list[AdapterError]] = field(default_factory=lambda: defaultdict(list))

    def record(self, name: str) -> None:
        self.calls.append(name)
        queued = self.failures.get(name)
        if queued:
            raise queued.pop(0)

    def fail(self, name: str, error: AdapterError, times: int = 1) -> None:
        self.failures[name].extend([error] * times)

    def count(self, name: str) -> int:
        return self.calls.count(name)


def month_after(day: date) -> date:
    """The same day a month later, or the month's last day when it has fewer (31 March -> 30 April)."""
    year, month = day.year + (day.month == 12), day.month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


class FakeBilling:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.accounts: dict[str, Account] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.invoices: dict[str, Invoice] = {}
        self.updates: dict[str, Subscription] = {}
        self._replies: dict[str, Invoice] = {}
        self.attempts: dict[str, PaymentAttempt] = {}
        self.card_outcomes: list[str] = []
        self.created: dict[str, Subscription] = {}
        self.ends: dict[str, object] = {}
        # The day billing dates the invoices it creates (None: billing names no date).
        self.invoice_date: date | None = None

    async def get_account(self, account_id: str) -> Account | None:
        self.ledger.record("billing.get_account")
        return self.accounts.get(account_id)

    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        self.ledger.record("billing.get_subscription")
        return self.subscriptions.get(subscription_id)

    async def update_subscription_lines(self, subscription_id, lines, *, idempotency_key):
        self.ledger.record("billing.update_subscription")
        if idempotency_key not in self.updates:
            sub = self.subscriptions[subscription_id]
            self.subscriptions[subscription_id] = sub.model_copy(update={"lines": list(lines)})
            self.updates[idempotency_key] = self.subscriptions[subscription_id]
        return self.updates[idempotency_key]

    async def create_proration_invoice(
        self,
        *,
        account_id,
        subscription_id,
        currency,
        lines,
        description,
        metadata,
        idempotency_key,
        billing_account="",
    ):
        self.ledger.record("billing.create_invoice")
        if idempotency_key not in self._replies:
            invoice = Invoice(
                id=f"in_{len(self.invoices) + 1}",
                account_id=account_id,
                subscription_id=subscription_id,
                status="open",
                currency=currency,
                total=total((x.amount for x in lines), currency),
                lines=lines,
                metadata=metadata,
                billing_account=billing_account,
                created=self.invoice_date,
            )
            self.invoices[invoice.id] = invoice
            self._replies[idempotency_key] = invoice
        return self._replies[idempotency_key]

    async def void_invoice(self, invoice_id: str, *, idempotency_key: str, billing_account: str = "") -> Invoice:
        self.ledger.record("billing.void_invoice")
        self.invoices[invoice_id] = self.invoices[invoice_id].model_copy(update={"status": "void"})
        return self.invoices[invoice_id]

    # -- dunning: card outcomes are scripted per attempt; "" means the charge succeeds.

    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        self.ledger.record("billing.get_invoice")
        return self.invoices.get(invoice_id)

    def pay(self, invoice_id: str, amount: Money) -> Invoice:
        """Money arrives (a card charge or a bank transfer)."""
        invoice = self.invoices[invoice_id]
        remaining = invoice.amount_remaining - amount
        self.invoices[invoice_id] = invoice.model_copy(
            update={
                "amount_paid": invoice.amount_paid + amount,
                "amount_remaining": remaining,
                "status": "paid" if remaining.is_zero else invoice.status,
            }
        )
        return self.invoices[invoice_id]

    async def retry_payment(self, invoice_id: str, *, idempotency_key: str) -> PaymentAttempt:
        self.ledger.record("billing.retry_payment")
        if idempotency_key not in self.attempts:
            invoice = self.invoices[invoice_id]
            decline = self.card_outcomes.pop(0) if self.card_outcomes else "insufficient_funds"
            if not decline:
                invoice = self.pay(invoice_id, invoice.amount_remaining)
            self.attempts[idempotency_key] = PaymentAttempt(
                invoice_id=invoice_id,
                outcome=PaymentOutcome.DECLINED if decline else PaymentOutcome.SUCCEEDED,
                decline_code=decline,
                amount_paid=invoice.amount_paid,
                amount_remaining=invoice.amount_remaining,
            )
        return self.attempts[idempotency_key]

    async def cancel_subscription(self, subscription_id: str, *, idempotency_key: str) -> Subscription:
        self.ledger.record("billing.cancel_subscription")
        sub = self.subscriptions[subscription_id].model_copy(update={"status": "canceled"})
        self.subscriptions[subscription_id] = sub
        return sub

    async def mark_uncollectible(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        self.ledger.record("billing.mark_uncollectible")
        self.invoices[invoice_id] = self.invoices[invoice_id].model_copy(update={"status": "uncollectible"})
        return self.invoices[invoice_id]

    async def invoice_of_charge(self, charge_id: str) -> str | None:
        return None

    async def find_invoice(self, invoice_id: str, *, billing_account: str = "") -> Invoice | None:
        self.ledger.record("billing.find_invoice")
        found = self.invoices.get(invoice_id)
        return found if found is not None and found.billing_account == billing_account else None

    async def list_invoices_page(self, *, created_from, created_to, billing_account="", cursor="", limit=100):
        self.ledger.record("billing.list_invoices")
        found = [
            i
            for i in self.invoices.values()
            if i.created and created_from <= i.created < created_to and i.billing_account == billing_account
        ]
        return _page(InvoicePage, found, cursor, limit)

    # -- renewals

    async def create_customer(self, account: Account, *, billing_account: str, idempotency_key: str) -> Account:
        self.ledger.record("billing.create_customer")
        created = account.model_copy(update={"id": f"{account.id}@{billing_account or 'platform'}"})
        self.accounts.setdefault(created.id, created)
        return created

    async def create_subscription(self, term, *, billing_account: str, idempotency_key: str) -> Subscription:
        self.ledger.record("billing.create_subscription")
        if idempotency_key not in self.created:
            sub = Subscription(
                id=f"sub_new_{len(self.subscriptions) + 1}",
                account_id=term.account_id,
                contract_id=term.contract_id,
                currency=term.currency,
                status="active",
                lines=term.lines,
                current_period_start=term.term_start,
                current_period_end=month_after(term.term_start),
                term_start=term.term_start,
                term_end=term.term_end,
            )
            self.subscriptions[sub.id] = sub
            self.created[idempotency_key] = sub
        return self.created[idempotency_key]

    async def subscriptions_ending(self, start, end) -> list[Subscription]:
        self.ledger.record("billing.subscriptions_ending")
        return [s for s in self.subscriptions.values() if s.status == "active" and start <= s.term_end < end]

    async def end_subscription_at(self, subscription_id, at, *, idempotency_key) -> Subscription:
        self.ledger.record("billing.end_subscription_at")
        self.ends[subscription_id] = at
        return self.subscriptions[subscription_id]

    async def cancel_subscription_end(self, subscription_id, *, idempotency_key) -> Subscription:
        self.ledger.record("billing.cancel_subscription_end")
        self.ends.pop(subscription_id, None)
        return self.subscriptions[subscription_id]


class FakeTax:
    """A flat 10 % on every line; an address without region or postal code has no jurisdiction."""

    RATE = Decimal("0.10")

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.documents: dict[str, TaxDocument] = {}

    def _compute(
        self, code: str, type_: str, status: str, currency: str, address: Address, lines: list[InvoiceLine]
    ) -> TaxDocument:
        if not address.has_tax_jurisdiction:
            raise BusinessError(
                "avatax", "the customer's address has no tax jurisdiction", code="MissingAddress", fixable=True
            )
        taxed = [
            TaxLine(number=str(i + 1), amount=x.amount, tax=x.amount.times(self.RATE)) for i, x in enumerate(lines)
        ]
        return TaxDocument(
            code=code,
            type=type_,
            status=status,
            lines=taxed,
            total_amount=total((x.amount for x in taxed), currency),
            total_tax=total((x.tax for x in taxed), currency),
        )

    async def quote(self, *, code, customer_code, document_date, currency, address, lines, company_code=""):
        self.ledger.record("tax.quote")
        return self._compute(code, "SalesOrder", "Temporary", currency, address, lines)

    async def commit(self, *, code, customer_code, document_date, currency, address, lines, company_code=""):
        self.ledger.record("tax.commit")
        if code not in self.documents:
            committed = self._compute(code, "SalesInvoice", "Committed", currency, address, lines)
            self.documents[code] = committed.model_copy(
                update={"document_date": document_date, "company_code": company_code or committed.company_code}
            )
        return self.documents[code]

    async def get_document(self, *, code: str) -> TaxDocument | None:
        self.ledger.record("tax.get_document")
        return self.documents.get(code)

    async def list_documents_page(self, *, company_code, date_from, date_to, cursor="", limit=1000):
        self.ledger.record("tax.list_documents")
        found = [d for d in self.documents.values() if d.document_date and date_from <= d.document_date < date_to]
        return _page(TaxDocumentPage, found, cursor, limit)

    async def void(self, *, code: str) -> TaxDocument | None:
        self.ledger.record("tax.void")
        if code not in self.documents:
            return None
        self.documents[code] = self.documents[code].model_copy(update={"status": "Cancelled"})
        return self.documents[code]


class FakeErp:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.entries: dict[str, JournalEntry] = {}
        self.closed_periods: set[str] = set()
        self.cases: dict[str, CollectionCase] = {}
        self.customers: dict[str, str] = {}

    async def post_journal_entry(self, entry: JournalEntry) -> JournalEntryRef:
        self.ledger.record("erp.post_journal_entry")
        if entry.posting_date.strftime("%Y-%m") in self.closed_periods:
            raise BusinessError(
                "netsuite",
                f"the accounting period {entry.posting_date:%b %Y} is closed",
                code="PERIOD_CLOSED",
                fixable=True,
            )
        self.entries[entry.external_id] = entry
        return JournalEntryRef(external_id=entry.external_id, internal_id=str(len(self.entries)))

    async def get_journal_entry(self, external_id: str) -> JournalEntry | None:
        self.ledger.record("erp.get_journal_entry")
        return self.entries.get(external_id)

    async def upsert_customer(self, account: Account, *, subsidiary: str) -> str:
        self.ledger.record("erp.upsert_customer")
        self.customers[account.id] = subsidiary
        return str(len(self.customers))

    async def upsert_collection_case(self, case: CollectionCase) -> CollectionCase:
        self.ledger.record("erp.upsert_collection_case")
        self.cases[case.external_id] = case
        return case

    async def list_journal_entries_page(self, *, subsidiary, date_from, date_to, cursor="", limit=1000):
        self.ledger.record("erp.list_journal_entries")
        found = [
            e.model_copy(update={"internal_id": str(n + 1)})
            for n, e in enumerate(self.entries.values())
            if e.subsidiary == subsidiary and date_from <= e.posting_date < date_to
        ]
        return _page(JournalEntryPage, found, cursor, limit)


class FakeEntitlements:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.seats: dict[tuple[str, str], int] = {}
        self.restricted: dict[str, bool] = {}

    async def set_seats(self, *, account_id, product, seats, idempotency_key) -> Entitlement:
        self.ledger.record("entitlements.set_seats")
        self.seats[(account_id, product)] = seats
        return Entitlement(account_id=account_id, product=product, seats=seats)

    async def set_restriction(self, *, account_id, restricted, idempotency_key) -> None:
        self.ledger.record("entitlements.set_restriction")
        self.restricted[account_id] = restricted


class FakeNotifications:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.outbox: dict[str, Notification] = {}

    async def send(self, notification: Notification, *, idempotency_key: str) -> str:
        self.ledger.record("notifications.send")
        self.outbox.setdefault(idempotency_key, notification)
        return idempotency_key


class FakeCrm:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.flags: dict[tuple[str, str], bool] = {}
        self.tasks: dict[str, CrmTask] = {}

    async def flag_account(self, account_id: str, *, flag: str, on: bool) -> None:
        self.ledger.record("crm.flag_account")
        self.flags[(account_id, flag)] = on

    async def create_task(self, task: CrmTask, *, idempotency_key: str) -> str:
        self.ledger.record("crm.create_task")
        self.tasks.setdefault(idempotency_key, task)
        return idempotency_key


class FakeSchedules:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.schedules: dict[str, RevenueSchedule] = {}

    async def save_schedule(self, schedule: RevenueSchedule) -> None:
        self.ledger.record("schedules.save")
        self.schedules[schedule.schedule_id] = schedule

    async def delete_schedule(self, schedule_id: str) -> None:
        self.ledger.record("schedules.delete")
        self.schedules.pop(schedule_id, None)

    async def get_schedule(self, schedule_id: str) -> RevenueSchedule | None:
        return self.schedules.get(schedule_id)

    async def save_schedules(self, schedules, *, delete=()) -> None:
        self.ledger.record("schedules.save_all")
        for schedule_id in delete:
            self.schedules.pop(schedule_id, None)
        self.schedules.update({s.schedule_id: s for s in schedules})

    async def schedules_of_contract(self, contract_id: str, *, open_on=None) -> list[RevenueSchedule]:
        return sorted(
            (
                s
                for s in self.schedules.values()
                if s.contract_id == contract_id and (open_on is None or s.end > open_on)
            ),
            key=lambda s: s.schedule_id,
        )

    async def schedules_of_entity(self, legal_entity: str) -> list[RevenueSchedule]:
        return sorted(
            (s for s in self.schedules.values() if s.legal_entity == legal_entity), key=lambda s: s.schedule_id
        )

    async def revenue_in_period(self, *, legal_entity, period, cursor="", limit=1000):
        sums: dict[str, Money] = {}
        for schedule in self.schedules.values():
            for line in schedule.lines:
                if (
                    schedule.legal_entity == legal_entity
                    and line.period == period
                    and schedule.obligation != USAGE_OBLIGATION
                ):
                    sums[schedule.contract_id] = (
                        sums.get(schedule.contract_id, Money.zero(line.amount.currency)) + line.amount
                    )
        found = [ContractRevenue(contract_id=c, amount=a) for c, a in sorted(sums.items())]
        return _page(ContractRevenuePage, found, cursor, limit)


class FakeMetering:
    """Stripe's meters and metered subscriptions: events kept once per identifier, and a draft
    per subscription and period that bills the meters' sums at the prices' unit amounts.

    Like Stripe, a draft keeps what the meters held when it was made, and finalising it
    re-quantifies its metered lines from the meters first (the finalisation grace period);
    `requantify` on makes every read of a draft follow the meters. `drafts` off: billing has
    produced no draft yet. `drop_reports` on: billing takes reports and later drops them, as
    Stripe does with an event it rejects asynchronously (an unknown customer); a dropped
    identifier is not taken, so sending it again once fixed counts it. Drafts live in the
    billing fake's invoices, so voiding one there voids it here."""

    def __init__(self, ledger: Ledger, billing: FakeBilling):
        self.ledger = ledger
        self.billing = billing
        self.meters: dict[str, Meter] = {}
        self.customers: dict[str, UsageCustomer] = {}  # by subscription id
        self.events: dict[str, MeterReport] = {}  # by identifier
        self.drafts = True
        self.requantify = False
        self.drop_reports = False
        self.dropped: list[MeterReport] = []  # the meter error events billing would send
        self.held: set[str] = set()
        self.accounts: dict[str, str] = {}  # legal entity -> its billing account (empty: the platform's)
        self._lines: dict[str, tuple[str, InvoiceLine]] = {}  # idempotency key -> (invoice, line added)
        self._finalized: dict[str, Invoice] = {}
        self._numbers = 0

    def subscribe(self, customer: UsageCustomer) -> None:
        self.customers[customer.subscription_id] = customer

    async def list_meters(self) -> list[Meter]:
        self.ledger.record("usage.list_meters")
        return list(self.meters.values())

    async def usage_customers(
        self, *, billing_account: str = "", after: str = "", limit: int = 0
    ) -> list[UsageCustomer]:
        self.ledger.record("usage.customers")
        listed = sorted(
            (c for c in self.customers.values() if self.billing_account_of(c) == billing_account),
            key=lambda c: c.subscription_id,
        )
        listed = [c for c in listed if c.subscription_id > after]
        return listed[:limit] if limit else listed

    def billing_account_of(self, customer: UsageCustomer) -> str:
        return self.accounts.get(customer.legal_entity, "")

    def _in_account(self, billing_account: str, *, customer: str = "", subscription_id: str = "") -> None:
        """As in Stripe, a customer or invoice of another billing account does not exist here."""
        for c in self.customers.values():
            if (c.customer == customer or c.subscription_id == subscription_id) and (
                self.billing_account_of(c) != billing_account
            ):
                raise BusinessError("stripe", f"no such customer in billing account {billing_account!r}", status=404)

    def _invoice_in(self, invoice_id: str, billing_account: str) -> Invoice:
        invoice = self.billing.invoices[invoice_id]
        self._in_account(billing_account, subscription_id=invoice.subscription_id)
        return invoice

    async def report_usage(self, reports, *, billing_account: str = "") -> None:
        self.ledger.record("usage.report")
        for report in reports:
            self._in_account(billing_account, customer=report.customer)
        if len(reports) > 100:
            raise BusinessError("stripe", "at most 100 events a request", code="too_many_events")
        for report in reports:
            if self.drop_reports:
                self.dropped.append(report)
            else:
                self.events.setdefault(report.identifier, report)

    async def metered_quantity(self, event_name: str, *, customer: str, start, end, billing_account: str = "") -> int:
        """The meter's sum for the customer over [start, end), as its event summaries give it."""
        self.ledger.record("usage.metered_quantity")
        self._in_account(billing_account, customer=customer)
        return sum(
            e.value
            for e in self.events.values()
            if e.customer == customer and e.event_name == event_name and start <= e.timestamp < end
        )

    def metered_sum(self, customer: str, meter: str, period: str) -> int:
        return sum(
            e.value
            for e in self.events.values()
            if e.customer == customer and e.event_name == meter and period_of(e.timestamp) == period
        )

    def _usage_lines(self, subscription: UsageCustomer, period: str, invoice_id: str) -> list[InvoiceLine]:
        start, end = period_start(period).date(), period_end(period).date()
        lines = []
        for n, price in enumerate(subscription.prices):
            quantity = max(self.metered_sum(subscription.customer, price.meter, period), 0)
            if price.unit_amount_decimal is None:
                amount = price.unit_amount.times(quantity)
            else:
                amount = Money.of(price.unit_amount_decimal * quantity, subscription.currency, rounded=True)
            lines.append(
                InvoiceLine(
                    product=price.price_id,
                    description=f"{quantity} x {price.meter}",
                    amount=amount,
                    meter=price.meter,
                    quantity=quantity,
                    line_id=f"il_{invoice_id}_{n}",
                    period_start=start,
                    period_end=end,
                )
            )
        return lines

    def make_draft(self, subscription_id: str, period: str) -> Invoice:
        """The period ends in billing: the draft that bills what the meters hold now."""
        subscription = self.customers[subscription_id]
        self._numbers += 1  # a number never given before, whatever was dropped since
        invoice_id = f"in_usage_{self._numbers}"
        lines = self._usage_lines(subscription, period, invoice_id)
        invoice = Invoice(
            id=invoice_id,
            account_id=subscription.customer,
            subscription_id=subscription_id,
            status="draft",
            currency=subscription.currency,
            total=total((x.amount for x in lines), subscription.currency),
            lines=lines,
            metadata={"usage_period": period},
            created=self.billing.invoice_date,
        )
        self.billing.invoices[invoice_id] = invoice
        return invoice

    def draft_of(self, subscription_id: str, period: str) -> Invoice | None:
        for invoice in self.billing.invoices.values():
            if invoice.subscription_id == subscription_id and invoice.metadata.get("usage_period") == period:
                return invoice
        return None

    def _refresh(self, invoice: Invoice, *, finalising: bool = False) -> Invoice:
        if invoice.status != "draft" or not (self.requantify or finalising):
            return invoice
        subscription = self.customers[invoice.subscription_id]
        usage = self._usage_lines(subscription, invoice.metadata["usage_period"], invoice.id)
        lines = usage + [x for x in invoice.lines if not x.meter]
        invoice = invoice.model_copy(
            update={"lines": lines, "total": total((x.amount for x in lines), invoice.currency)}
        )
        self.billing.invoices[invoice.id] = invoice
        return invoice

    async def find_usage_draft(
        self, subscription_id, *, period_start, period_end, billing_account=""
    ) -> Invoice | None:
        self.ledger.record("usage.find_draft")
        self._in_account(billing_account, subscription_id=subscription_id)
        period = f"{period_start:%Y-%m}"
        invoice = self.draft_of(subscription_id, period)
        if invoice is None and self.drafts and subscription_id in self.customers:
            invoice = self.make_draft(subscription_id, period)
        return self._refresh(invoice) if invoice else None

    async def hold_invoice(self, invoice_id: str, *, billing_account: str = "") -> Invoice:
        self.ledger.record("usage.hold_invoice")
        invoice = self._invoice_in(invoice_id, billing_account)
        self.held.add(invoice_id)
        return self._refresh(invoice)

    async def add_invoice_line(
        self, invoice_id, *, customer, amount, description, metadata, idempotency_key, billing_account=""
    ):
        self.ledger.record("usage.add_invoice_line")
        invoice = self._invoice_in(invoice_id, billing_account)
        if idempotency_key not in self._lines:
            if invoice.status != "draft":
                raise BusinessError("stripe", f"invoice {invoice_id} is not a draft", code="invoice_not_editable")
            self._numbers += 1
            line = InvoiceLine(
                product="invoiceitem", description=description, amount=amount, line_id=f"ii_{self._numbers}"
            )
            self._lines[idempotency_key] = (invoice_id, line)
            lines = [*invoice.lines, line]
            invoice = invoice.model_copy(
                update={"lines": lines, "total": total((x.amount for x in lines), invoice.currency)}
            )
            self.billing.invoices[invoice_id] = invoice
        return self._refresh(self.billing.invoices[invoice_id])

    async def remove_invoice_line(self, line_id: str, *, idempotency_key: str, billing_account: str = "") -> None:
        self.ledger.record("usage.remove_invoice_line")
        for invoice_id, line in self._lines.values():
            invoice = self._invoice_in(invoice_id, billing_account)
            if line.line_id == line_id and any(x.line_id == line_id for x in invoice.lines):
                if invoice.status != "draft":
                    raise BusinessError("stripe", f"invoice {invoice_id} is not a draft", code="invoice_not_editable")
                lines = [x for x in invoice.lines if x.line_id != line_id]
                self.billing.invoices[invoice_id] = invoice.model_copy(
                    update={"lines": lines, "total": total((x.amount for x in lines), invoice.currency)}
                )

    async def finalize_invoice(self, invoice_id: str, *, idempotency_key: str, billing_account: str = "") -> Invoice:
        self.ledger.record("usage.finalize_invoice")
        if idempotency_key not in self._finalized:
            invoice = self._refresh(self._invoice_in(invoice_id, billing_account), finalising=True)
            if invoice.status != "draft":
                raise BusinessError("stripe", f"invoice {invoice_id} is {invoice.status}", code="invoice_not_draft")
            invoice = invoice.model_copy(update={"status": "open", "tax": None})
            self.billing.invoices[invoice_id] = invoice
            self._finalized[idempotency_key] = invoice
        return self._finalized[idempotency_key]


class FakeUsageStore:
    """o2c's usage store in memory: totals per customer, meter and period, closed periods and releases."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.quantities: dict[tuple[str, str, str], tuple[int, int]] = {}  # (customer, period, meter) -> (qty, events)
        self.closed: set[tuple[str, str]] = set()
        self.released: dict[str, UsageRelease] = {}

    def count(self, customer: str, period: str, meter: str, quantity: int, events: int = 1) -> None:
        """Accepted events arrive (what the ingress would have added up)."""
        before, seen = self.quantities.get((customer, period, meter), (0, 0))
        self.quantities[(customer, period, meter)] = (before + quantity, seen + events)

    async def totals(self, customer: str, period: str) -> list[UsageTotal]:
        self.ledger.record("usage.totals")
        return [
            UsageTotal(customer=c, meter=m, period=p, quantity=q, events=n)
            for (c, p, m), (q, n) in sorted(self.quantities.items())
            if c == customer and p == period
        ]

    async def close_period(self, customer: str, period: str) -> None:
        self.ledger.record("usage.close_period")
        self.closed.add((customer, period))

    async def reopen_period(self, customer: str, period: str) -> None:
        self.ledger.record("usage.reopen_period")
        self.closed.discard((customer, period))

    async def history(self, customer: str, meter: str, *, before: str, periods: int) -> list[int]:
        self.ledger.record("usage.history")
        found = sorted(
            (r.period, r.quantities.get(meter, 0))
            for r in self.released.values()
            if r.customer == customer and r.period < before
        )
        return [q for _, q in found[-periods:]]

    async def previous_release(self, customer: str, *, before: str) -> UsageRelease | None:
        self.ledger.record("usage.previous_release")
        found = sorted((r.period, r) for r in self.released.values() if r.customer == customer and r.period < before)
        return found[-1][1] if found else None

    async def record_release(self, release: UsageRelease) -> None:
        self.ledger.record("usage.record_release")
        self.released[release.workflow_id] = release

    async def delete_release(self, workflow_id: str) -> None:
        self.ledger.record("usage.delete_release")
        self.released.pop(workflow_id, None)

    async def releases(self, *, legal_entity: str, period: str, cursor: str = "", limit: int = 1000):
        found = sorted(
            (r for r in self.released.values() if r.legal_entity == legal_entity and r.period == period),
            key=lambda r: r.invoice_id,
        )
        start = int(cursor or 0)
        return found[start : start + limit], str(start + limit) if start + limit < len(found) else ""


@dataclass
class FakeSystems:
    ledger: Ledger = field(default_factory=Ledger)

    def __post_init__(self) -> None:
        self.billing = FakeBilling(self.ledger)
        self.tax = FakeTax(self.ledger)
        self.erp = FakeErp(self.ledger)
        self.entitlements = FakeEntitlements(self.ledger)
        self.notifications = FakeNotifications(self.ledger)
        self.crm = FakeCrm(self.ledger)
        self.schedules = FakeSchedules(self.ledger)
        self.metering = FakeMetering(self.ledger, self.billing)
        self.usage = FakeUsageStore(self.ledger)
        self.reconciliations: SqlReconciliationStore | None = None

    def ports(self) -> dict:
        if self.reconciliations is None:
            # o2c's own database is o2c, not an outside system: the real store, on a scratch SQLite file.
            self.reconciliations = SqlReconciliationStore(f"sqlite:///{tempfile.mkdtemp(prefix='o2c-')}/o2c.sqlite")
        return dict(
            billing=self.billing,
            tax=self.tax,
            erp=self.erp,
            entitlements=self.entitlements,
            notifications=self.notifications,
            crm=self.crm,
            schedules=self.schedules,
            reconciliations=self.reconciliations,
            metering=self.metering,
            usage=self.usage,
        )


def _page(model, items: list, cursor: str, limit: int):
    """A page of an in-memory listing; the cursor is the offset."""
    start = int(cursor or 0)
    more = start + limit < len(items)
    return model(items=items[start : start + limit], next_cursor=str(start + limit) if more else "")


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def seat_line(quantity: int, price: str = "50.00", product: str = "seats", discount: str = "0") -> SubscriptionLine:
    return SubscriptionLine(
        item_id=f"si_{product}",
        product=product,
        description="Platform seat",
        quantity=quantity,
        unit_price=usd(price),
        discount_percent=Decimal(discount),
    )
