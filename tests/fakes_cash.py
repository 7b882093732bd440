"""In-memory stand-ins for the cash ports: o2c's cash store, billing's payments, the ERP's
receivables and the CRM's receivables fields. They keep what the real systems keep in the
way the tests look at it (documents by external id, each call in the shared ledger), and
refuse what the real ones refuse (over-application, a second decision)."""

from __future__ import annotations

import tempfile
from datetime import date, datetime

from adapters.errors import BusinessError
from adapters.storage.cash import SqlCashStore
from canonical.cash.matching import normalise_reference
from canonical.cash.models import (
    Application,
    BankStatement,
    CashDecision,
    CashDecisionKind,
    CashMatch,
    MatchRule,
    OpenItem,
    OpenItemBook,
    QueuedReceipt,
    Receipt,
)
from canonical.cash.payers import account_key, name_key, payer_keys
from canonical.credits import Refund
from canonical.models import Invoice
from canonical.money import Money, total
from canonical.receivables import CustomerPayment, CustomerRefundPosting
from tests.fakes import FakeCrm, FakeSystems, Ledger


class FakeCashStore:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.statements: dict[str, BankStatement] = {}
        self.receipts_by_id: dict[str, Receipt] = {}
        self.items: dict[str, OpenItem] = {}
        self.matches: dict[str, CashMatch] = {}
        self.decisions: dict[str, CashDecision] = {}
        self.payers: dict[str, str] = {}  # account:/name: keys -> customer

    def know_payer(self, customer: str, *, name: str = "", account: str = "") -> None:
        if name:
            self.payers[name_key(name)] = customer
        if account:
            self.payers[account_key(account)] = customer

    async def record_statement(self, statement: BankStatement, receipts: list[Receipt]) -> bool:
        self.ledger.record("cash.record_statement")
        if statement.statement_id in self.statements:
            return False
        self.statements[statement.statement_id] = statement
        for r in receipts:
            self.receipts_by_id.setdefault(r.receipt_id, r)
        return True

    async def record_receipt(self, receipt: Receipt) -> bool:
        self.ledger.record("cash.record_receipt")
        if receipt.receipt_id in self.receipts_by_id:
            return False
        self.receipts_by_id[receipt.receipt_id] = receipt
        return True

    async def receipts(self, statement_id: str, *, after: str = "", limit: int = 500) -> list[Receipt]:
        self.ledger.record("cash.receipts")
        found = sorted(
            (r for r in self.receipts_by_id.values() if r.statement_id == statement_id and r.receipt_id > after),
            key=lambda r: r.receipt_id,
        )
        return found[:limit]

    async def receipt(self, receipt_id: str) -> Receipt | None:
        return self.receipts_by_id.get(receipt_id)

    async def upsert_open_items(self, items: list[OpenItem]) -> None:
        for item in items:
            self.items[item.invoice_id] = item

    async def open_items(self, *, customer: str = "", invoice_refs: list[str] = ()) -> list[OpenItem]:  # type: ignore[assignment]
        if customer:
            return [x for x in self.items.values() if x.customer == customer and not x.balance.is_zero]
        wanted = {normalise_reference(r) for r in invoice_refs}
        return [
            x
            for x in self.items.values()
            if normalise_reference(x.invoice_id) in wanted or (x.number and normalise_reference(x.number) in wanted)
        ]

    async def book_for(self, receipts: list[Receipt]) -> OpenItemBook:
        self.ledger.record("cash.book_for")
        refs = [ref for r in receipts for ref in (r.invoice_hint, *r.references) if ref]
        items = {x.invoice_id: x for x in await self.open_items(invoice_refs=refs)}
        payers = {}
        for r in receipts:
            for key in payer_keys(r):
                if key in self.payers:
                    payers[key] = self.payers[key]
            customer = r.customer_hint or next((payers[k] for k in payer_keys(r) if k in payers), "")
            for x in self.items.values():
                if customer and x.customer == customer:
                    items.setdefault(x.invoice_id, x)
        return OpenItemBook(items=list(items.values()), payers=payers)

    async def apply_matches(self, matches: list[CashMatch]) -> list[CashMatch]:
        self.ledger.record("cash.apply_matches")
        kept = []
        for m in matches:
            if m.receipt_id in self.matches:
                kept.append(self.matches[m.receipt_id])
                continue
            for a in m.applications:
                item = self.items[a.invoice_id]
                self.items[a.invoice_id] = item.model_copy(update={"balance": item.balance - a.amount})
            self.matches[m.receipt_id] = m
            kept.append(m)
        return kept

    async def match_of(self, receipt_id: str) -> CashMatch | None:
        return self.matches.get(receipt_id)

    async def record_decision(self, decision: CashDecision) -> CashMatch:
        self.ledger.record("cash.record_decision")
        if decision.receipt_id in self.decisions:
            raise ValueError(f"receipt {decision.receipt_id} was decided already")
        match = self.matches[decision.receipt_id]
        used = decision.refund or total((a.amount for a in decision.applications), match.unapplied.currency)
        if used > match.unapplied:
            raise ValueError(f"{used} is more than the {match.unapplied} unapplied")
        for a in decision.applications:
            item = self.items[a.invoice_id]
            if a.amount > item.balance:
                raise ValueError(f"{a.amount} is more than {item.balance} due on {a.invoice_id}")
            self.items[a.invoice_id] = item.model_copy(update={"balance": item.balance - a.amount})
        self.decisions[decision.receipt_id] = decision
        decided = match.model_copy(
            update={
                "rule": MatchRule.OPERATOR if decision.kind == CashDecisionKind.APPLY else match.rule,
                "applications": _merge(match.applications, decision.applications),
                "unapplied": match.unapplied - used,
                "exception": None,
            }
        )
        self.matches[decision.receipt_id] = decided
        return decided

    async def queue(
        self, *, legal_entity: str = "", as_of: date | None = None, limit: int = 200
    ) -> list[QueuedReceipt]:
        waiting = []
        for rid, m in self.matches.items():
            r = self.receipts_by_id[rid]
            if rid in self.decisions or (m.unapplied.is_zero and m.exception is None):
                continue
            if legal_entity and r.legal_entity != legal_entity:
                continue
            age = ((as_of or date.today()) - r.value_date).days
            waiting.append(QueuedReceipt(receipt=r, match=m, age_days=age))
        return sorted(waiting, key=lambda q: (-q.age_days, q.receipt.receipt_id))[:limit]

    async def unapplied_total(self, legal_entity: str, currency: str) -> Money:
        return total((q.match.unapplied for q in await self.queue(legal_entity=legal_entity)), currency)

    async def card_attempts(self, card: str, *, since: datetime) -> int:
        return 0

    async def reserve_card_attempt(self, card: str, attempt_key: str, *, at: datetime, limit: int) -> bool:
        return True


def _merge(before: list[Application], added: list[Application]) -> list[Application]:
    """One line an invoice, as the real store keeps them."""
    lines: dict[str, Application] = {}
    for a in [*before, *added]:
        known = lines.get(a.invoice_id)
        lines[a.invoice_id] = a if known is None else known.model_copy(update={"amount": known.amount + a.amount})
    return list(lines.values())


class FakePayments:
    """Billing's cash side: invoices paid out of band, refunds on charges."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.paid_out_of_band: dict[str, str] = {}  # invoice -> idempotency key
        self.refunds: dict[str, Refund] = {}  # idempotency key -> refund

    async def mark_paid_out_of_band(
        self, invoice_id: str, *, idempotency_key: str, billing_account: str = ""
    ) -> Invoice:
        self.ledger.record("payments.mark_paid_out_of_band")
        self.paid_out_of_band.setdefault(invoice_id, idempotency_key)
        return Invoice(id=invoice_id, account_id="", currency="USD", status="paid", total=Money.zero("USD"))

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
        self.ledger.record("payments.create_refund")
        return self.refunds.setdefault(
            idempotency_key,
            Refund(
                refund_id=f"re_{len(self.refunds) + 1}",
                charge_id=charge_id,
                amount=amount,
                status="succeeded",
                reason=reason,
            ),
        )


class FakeReceivables:
    """NetSuite's receivables: payments and refunds upserted by external id; a payment's apply
    lines may not take more than a document has open (other payments' lines counted)."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.documents: dict[str, str] = {}  # invoice -> the receivable's internal id
        self.open: dict[str, Money] = {}  # internal id -> amount of the receivable
        self.payments: dict[str, CustomerPayment] = {}
        self.applied: dict[str, dict[str, Money]] = {}  # document -> payment external id -> amount
        self.refunds: dict[str, CustomerRefundPosting] = {}
        self.posts: list[str] = []  # every post, by external id

    def book(self, invoice_id: str, amount: Money) -> str:
        doc = f"{len(self.documents) + 100}"
        self.documents[invoice_id] = doc
        self.open[doc] = amount
        return doc

    async def receivable_documents(self, invoice_ids: list[str], *, subsidiary: str) -> dict[str, str]:
        self.ledger.record("receivables.receivable_documents")
        found = {i: await self.receivable_document(i, subsidiary=subsidiary) for i in invoice_ids}
        return {i: doc for i, doc in found.items() if doc}

    async def receivable_document(self, invoice_id: str, *, subsidiary: str) -> str | None:
        self.ledger.record("receivables.receivable_document")
        return self.documents.get(invoice_id)

    def applied_to(self, doc: str, *, besides: str = "") -> Money:
        """What payments apply to the document (the one being upserted left out)."""
        lines = self.applied.get(doc, {})
        return total((m for ext, m in lines.items() if ext != besides), self.open[doc].currency)

    async def post_customer_payment(self, payment: CustomerPayment) -> str:
        self.ledger.record("receivables.post_customer_payment")
        for a in payment.applications:
            if a.erp_document not in self.open:
                raise BusinessError("netsuite", f"no receivable {a.erp_document}")
            if self.applied_to(a.erp_document, besides=payment.external_id) + a.amount > self.open[a.erp_document]:
                raise BusinessError("netsuite", f"applying {a.amount} to {a.erp_document} is more than is open")
        before = self.payments.get(payment.external_id)
        for a in before.applications if before else []:
            self.applied.get(a.erp_document, {}).pop(payment.external_id, None)
        for a in payment.applications:
            self.applied.setdefault(a.erp_document, {})[payment.external_id] = a.amount
        self.payments[payment.external_id] = payment
        self.posts.append(payment.external_id)
        return f"pay-{payment.external_id}"

    async def get_customer_payment(self, external_id: str) -> CustomerPayment | None:
        return self.payments.get(external_id)

    async def post_customer_refund(self, refund: CustomerRefundPosting) -> str:
        self.ledger.record("receivables.post_customer_refund")
        self.refunds[refund.external_id] = refund
        self.posts.append(refund.external_id)
        return f"ref-{refund.external_id}"

    async def open_amount(self, erp_document: str) -> Money | None:
        if erp_document not in self.open:
            return None
        return self.open[erp_document] - self.applied_to(erp_document)

    async def post_credit_memo(self, memo: object) -> str:
        raise NotImplementedError

    async def reverse_credit_memo(self, external_id: str) -> None:
        raise NotImplementedError


class FakeCashCrm(FakeCrm):
    def __init__(self, ledger: Ledger):
        super().__init__(ledger)
        self.receivables: dict[str, tuple[Money, date | None]] = {}

    async def update_receivables(self, account_id: str, *, open_balance: Money, last_payment_on: date | None) -> None:
        self.ledger.record("crm.update_receivables")
        self.receivables[account_id] = (open_balance, last_payment_on)


class CashSystems(FakeSystems):
    """FakeSystems with the cash ports; o2c's cash store is the real one, on a scratch SQLite
    file (o2c's own database is o2c, not an outside system)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.crm = FakeCashCrm(self.ledger)
        self.cash = SqlCashStore(f"sqlite:///{tempfile.mkdtemp(prefix='o2c-cash-')}/cash.sqlite")
        self.payments = FakePayments(self.ledger)
        self.receivables = FakeReceivables(self.ledger)

    def ports(self) -> dict:
        return {**super().ports(), "cash": self.cash, "payments": self.payments, "receivables": self.receivables}

    async def invoice(
        self, invoice_id: str, amount: str, *, customer: str = "cus_acme", entity: str = "US01"
    ) -> OpenItem:
        """An open invoice o2c knows and the ERP booked."""
        money = Money.of(amount, "USD")
        item = OpenItem(
            invoice_id=invoice_id, number=invoice_id, customer=customer, legal_entity=entity, total=money, balance=money
        )
        await self.cash.upsert_open_items([item])
        self.receivables.book(invoice_id, money)
        return item

    async def receive(self, *receipts: Receipt) -> str:
        """The receipts of one statement, kept in the store; the statement's id."""
        for r in receipts:
            await self.cash.record_receipt(r)
        return receipts[0].statement_id
