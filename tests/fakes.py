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
from tests.usage_recon_fakes import InMemoryUsageStore


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

    async def quote(self, *, code, customer_code, document_date, currency, address, lines):
        self.ledger.record("tax.quote")
        return self._compute(code, "SalesOrder", "Temporary", currency, address, lines)

    async def commit(self, *, code, customer_code, document_date, currency, address, lines):
        self.ledger.record("tax.commit")
        if code not in self.documents:
            self.documents[code] = self._compute(code, "SalesInvoice", "Committed", currency, address, lines)
        return self.documents[code]

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
        self.reconciliations: SqlReconciliationStore | None = None
        self.usage = InMemoryUsageStore()

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
