"""Seeding a reconciliation period: one legal entity's invoices in billing, their tax
documents in AvaTax and their journal entries in NetSuite, written in bulk, with chosen
breaks between the three. Control plane only (POST /_sandbox/seed/period).

Deterministic: the same request writes the same documents (ids, amounts, dates), so a
test can name what each break must be classified as. Different tags seed side by side
in one database.

For invoice i (0-based) of N: id `in_recon_<tag>_<i:06d>`, customer
`cus_recon_<tag>_<i % 100>`, paid when i % paid_every == 0 (else open), created on the
period's days in order of i (UTC), revenue 100.00 + (i % 97) x 3.17, tax = revenue x
tax_rate % (half-up), one revenue line ("seats") and one tax line ("sales-tax"). AvaTax
holds a committed SalesInvoice under the invoice id; NetSuite an invoice entry
`amendment-recon-<tag>-<i:06d>-invoice` (receivable 1200 / deferred revenue 2400 / tax
payable 2200) and, for a paid invoice, a cash receipt `payment-<invoice id>` (cash 1010 /
receivable 1200), both naming the invoice in custbody_o2c_invoice.

Breaks, each on its own invoices, taken from the last ones that suit it (see NEEDS), so
that each shows as exactly one break: missing_in_erp (no entries), missing_in_billing (a
ghost invoice in AvaTax and NetSuite only), duplicate_posting (a second entry
`manual-<invoice id>`), amount_mismatch (receivable and deferred revenue 1.00 higher in
the ERP), tax_mismatch (AvaTax's tax one minor unit higher), currency_mismatch (the
invoice entry booked in EUR, or USD for a EUR period, with the same numbers) and
status_mismatch (a paid invoice without its payment entry).

With `erp: "sap"` the entries are SAP documents in the company code `subsidiary` instead (see
period_seed_sap.py; the company code must exist in the stand-in and book in `currency`), the
customers business partners there, and `tag` at most 7 characters (a customer id fits SAP's
20); `logical_system` names o2c's (default O2C). The breaks are the same: the duplicate is a
second document `manual-<invoice id>` from o2c's logical system.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sandbox.control.period_seed_sap import SapLedger, SeedRefused
from sandbox.currency import MINOR_UNITS, minor_unit
from sandbox.store import Store, Tx

BREAK_KINDS = (
    "missing_in_erp",
    "missing_in_billing",
    "duplicate_posting",
    "amount_mismatch",
    "tax_mismatch",
    "currency_mismatch",
    "status_mismatch",
)
MAX_INVOICES = 1_000_000
CUSTOMERS = 100
CONTRACTS = 1000

RECEIVABLE, DEFERRED, TAX_PAYABLE, CASH, REVENUE = "1200", "2400", "2200", "1010", "4000"

_TAG = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
ERPS = ("netsuite", "sap")
SAP_TAG_LIMIT = 7  # "cus_recon_<tag>_99" within BusinessPartnerIDByExtSystem's 20 characters
FIELDS = frozenset(
    {
        "tag",
        "period",
        "invoices",
        "currency",
        "stripe_account",
        "company_code",
        "subsidiary",
        "tax_rate",
        "paid_every",
        "breaks",
        "revenue",
        "erp",
        "logical_system",
    }
)


class SeedError(ValueError):
    """A malformed seed request (answered 400)."""


# -- the request -----------------------------------------------------------------------------


class PeriodSpec:
    def __init__(self, body: dict[str, Any]):
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            raise SeedError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(FIELDS))}")
        self.tag = str(body.get("tag") or "")
        if not _TAG.match(self.tag):
            raise SeedError("tag is required: 1 to 32 letters, digits, '-' or '_'")
        self.period = str(body.get("period") or "")
        try:
            self.first = date.fromisoformat(f"{self.period}-01")
        except ValueError:
            raise SeedError(f"period must be YYYY-MM, got {self.period!r}") from None
        if len(self.period) != 7:
            raise SeedError(f"period must be YYYY-MM, got {self.period!r}")
        self.days = calendar.monthrange(self.first.year, self.first.month)[1]
        self.last = self.first + timedelta(days=self.days - 1)
        self.invoices = _count(body.get("invoices", 0), "invoices", MAX_INVOICES)
        self.currency = str(body.get("currency") or "USD").upper()
        if self.currency not in MINOR_UNITS:
            raise SeedError(f"unknown currency {self.currency!r}")
        self.minor = minor_unit(self.currency)
        self.stripe_account = str(body.get("stripe_account") or "")
        if self.stripe_account and (not self.stripe_account.startswith("acct_") or len(self.stripe_account) > 40):
            raise SeedError("stripe_account is empty (the platform) or a Connect account id acct_...")
        self.company_code = str(body.get("company_code") or "US01")
        self.erp = str(body.get("erp") or "netsuite")
        if self.erp not in ERPS:
            raise SeedError(f"erp is one of {', '.join(ERPS)}, got {self.erp!r}")
        self.subsidiary = str(body.get("subsidiary") or ("1010" if self.erp == "sap" else "1"))
        self.logical_system = str(body.get("logical_system") or "O2C")
        if self.erp == "sap":
            if len(self.tag) > SAP_TAG_LIMIT:
                raise SeedError(f"tag is at most {SAP_TAG_LIMIT} characters for SAP (its customer ids fit SAP's 20)")
            if not 1 <= len(self.subsidiary) <= 4:
                raise SeedError(f"subsidiary is an SAP company code of up to 4 characters, got {self.subsidiary!r}")
            if len(self.logical_system) > 10:
                raise SeedError("logical_system is at most 10 characters")
        try:
            self.tax_rate = Decimal(str(body.get("tax_rate", "7.25")))
        except InvalidOperation:
            raise SeedError(f"tax_rate must be a decimal percentage, got {body.get('tax_rate')!r}") from None
        if not self.tax_rate.is_finite() or not 0 <= self.tax_rate < 100:
            raise SeedError("tax_rate must be a percentage in [0, 100)")
        self.paid_every = _count(body.get("paid_every", 2), "paid_every", MAX_INVOICES)
        if self.paid_every < 1:
            raise SeedError("paid_every must be at least 1")
        breaks = body.get("breaks") or {}
        if not isinstance(breaks, dict) or set(breaks) - set(BREAK_KINDS):
            raise SeedError(f"breaks maps break kinds ({', '.join(BREAK_KINDS)}) to counts")
        self.breaks = {kind: _count(breaks.get(kind, 0), f"breaks.{kind}", MAX_INVOICES) for kind in BREAK_KINDS}
        self.revenue: list[tuple[str, Decimal]] = []
        items = body.get("revenue") or []
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise SeedError("revenue is a list of {contract_id, amount}")
        for index, item in enumerate(items):
            contract = str(item.get("contract_id") or "")
            try:
                amount = Decimal(str(item.get("amount")))
            except InvalidOperation:
                raise SeedError(f"revenue[{index}].amount must be a decimal amount") from None
            if not amount.is_finite():
                raise SeedError(f"revenue[{index}].amount must be a decimal amount")
            amount = self.money(amount)
            if not contract or amount <= 0:
                raise SeedError(f"revenue[{index}] needs a contract_id and a positive amount")
            if any(c == contract for c, _ in self.revenue):
                raise SeedError(f"revenue lists contract {contract} twice")
            self.revenue.append((contract, amount))

    def money(self, amount: Decimal) -> Decimal:
        return amount.quantize(Decimal(1).scaleb(-self.minor), rounding=ROUND_HALF_UP)

    def to_minor(self, amount: Decimal) -> int:
        return int(amount.scaleb(self.minor))

    @property
    def one_minor(self) -> Decimal:
        return Decimal(1).scaleb(-self.minor)

    @property
    def other_currency(self) -> str:
        return "USD" if self.currency == "EUR" else "EUR"


def _count(value: Any, name: str, maximum: int) -> int:
    if isinstance(value, bool):
        raise SeedError(f"{name} must be a whole number")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SeedError(f"{name} must be a whole number, got {value!r}") from None
    if not 0 <= number <= maximum or str(number) != str(value).strip().lstrip("+"):
        raise SeedError(f"{name} must be a whole number from 0 to {maximum}, got {value!r}")
    return number


# -- the invoices ----------------------------------------------------------------------------


class SeededInvoice:
    """What invoice i is in billing; the other systems mirror it (breaks aside)."""

    def __init__(self, spec: PeriodSpec, i: int, *, ghost: int | None = None):
        self.i = i
        if ghost is None:
            self.id = f"in_recon_{spec.tag}_{i:06d}"
            self.workflow = f"amendment-recon-{spec.tag}-{i:06d}"
            start = datetime(spec.first.year, spec.first.month, 1, tzinfo=UTC).timestamp()
            # Spread over the month in order of i, so insertion order is creation order.
            self.created = int(start) + (i * spec.days * 86400) // max(spec.invoices, 1)
        else:
            self.id = f"in_recon_{spec.tag}_ghost_{ghost}"
            self.workflow = f"amendment-recon-{spec.tag}-ghost-{ghost}"
            self.created = int(datetime(spec.last.year, spec.last.month, spec.last.day, 12, tzinfo=UTC).timestamp())
        self.day = datetime.fromtimestamp(self.created, tz=UTC).date()
        self.customer = f"cus_recon_{spec.tag}_{i % CUSTOMERS}"
        self.contract = f"C-recon-{spec.tag}-{i % CONTRACTS}"
        self.paid = i % spec.paid_every == 0
        self.revenue = spec.money(Decimal("100.00") + (i % 97) * Decimal("3.17"))
        self.tax = spec.money(self.revenue * spec.tax_rate / 100)
        self.total = self.revenue + self.tax


# Which invoices a break may take. A break that changes what the ERP books for an invoice
# takes an open one: a cash receipt would settle a receivable the ERP booked differently
# and the invoice would look unpaid there as well (a second break). A status mismatch is
# a paid invoice without its receipt. Constrained kinds choose first.
NEEDS = {
    "status_mismatch": "paid",
    "duplicate_posting": "open",
    "amount_mismatch": "open",
    "currency_mismatch": "open",
    "missing_in_erp": "any",
    "tax_mismatch": "any",
}


def _choose_breaks(spec: PeriodSpec) -> dict[str, list[int]]:
    """Distinct invoices for each break, from the last ones backwards."""
    used: set[int] = set()
    chosen: dict[str, list[int]] = {kind: [] for kind in BREAK_KINDS}
    for kind, need in NEEDS.items():
        candidate = spec.invoices - 1
        while len(chosen[kind]) < spec.breaks[kind]:
            while candidate >= 0 and (
                candidate in used
                or (need == "paid" and candidate % spec.paid_every != 0)
                or (need == "open" and candidate % spec.paid_every == 0)
            ):
                candidate -= 1
            if candidate < 0:
                invoices = "invoices" if need == "any" else f"{need} invoices"
                raise SeedError(
                    f"not enough {invoices} for {spec.breaks[kind]} {kind} break(s) besides the other breaks"
                )
            used.add(candidate)
            chosen[kind].append(candidate)
    return chosen


# -- documents, as each system's handlers store them ----------------------------------------------


def _stripe_customer(spec: PeriodSpec, k: int) -> dict[str, Any]:
    customer = {
        "id": f"cus_recon_{spec.tag}_{k}",
        "object": "customer",
        "name": f"Recon customer {spec.tag} {k}",
        "email": f"ap+{spec.tag}-{k}@recon.test",
        "description": None,
        "address": None,
        "balance": 0,
        "currency": spec.currency.lower(),
        "created": int(datetime(spec.first.year, spec.first.month, 1, tzinfo=UTC).timestamp()) - 86400,
        "livemode": False,
        "metadata": {"legal_entity": spec.company_code},
        "invoice_settings": {"default_payment_method": None},
    }
    if spec.stripe_account:
        customer["_stripe_account"] = spec.stripe_account
    return customer


def _stripe_invoice(spec: PeriodSpec, inv: SeededInvoice) -> dict[str, Any]:
    currency = spec.currency.lower()
    total = spec.to_minor(inv.total)
    paid = total if inv.paid else 0

    def line(n: int, product: str, description: str, amount: Decimal) -> dict[str, Any]:
        return {
            "id": f"il_recon_{spec.tag}_{inv.i:06d}_{n}",
            "object": "line_item",
            "type": "invoiceitem",
            "invoice_item": None,
            "amount": spec.to_minor(amount),
            "currency": currency,
            "description": description,
            "subscription": None,
            "metadata": {"o2c_workflow": inv.workflow, "product": product},
            "period": None,
        }

    invoice = {
        "id": inv.id,
        "object": "invoice",
        "customer": inv.customer,
        "subscription": None,
        "status": "paid" if inv.paid else "open",
        "number": f"RECON-{spec.tag}-{inv.i:06d}",
        "currency": currency,
        "description": f"Seeded invoice {inv.i} of {spec.period}",
        "auto_advance": False,
        "collection_method": "charge_automatically",
        "metadata": {"o2c_workflow": inv.workflow, "contract_id": inv.contract},
        "lines": {
            "object": "list",
            "data": [
                line(1, "seats", "Platform seats", inv.revenue),
                line(2, "sales-tax", f"Sales tax ({inv.day.isoformat()})", inv.tax),
            ],
            "has_more": False,
            "total_count": 2,
        },
        "subtotal": total,
        "tax": None,
        "total": total,
        "amount_due": total,
        "amount_paid": paid,
        "amount_remaining": total - paid,
        "starting_balance": 0,
        "ending_balance": 0,
        "created": inv.created,
        "status_transitions": {
            "finalized_at": inv.created,
            "paid_at": inv.created + 3600 if inv.paid else None,
            "voided_at": None,
            "marked_uncollectible_at": None,
        },
        "attempt_count": 1 if inv.paid else 0,
        "attempted": inv.paid,
        "paid": inv.paid,
        "paid_out_of_band": inv.paid,
        "charge": None,
        "payment_intent": None,
        "next_payment_attempt": None,
        "billing_reason": "manual",
        "livemode": False,
    }
    if spec.stripe_account:
        invoice["_stripe_account"] = spec.stripe_account
    return invoice


def _avatax_document(spec: PeriodSpec, inv: SeededInvoice, avatax_id: int, *, tax_delta: Decimal) -> dict[str, Any]:
    tax = inv.tax + tax_delta
    rate = str(spec.tax_rate / 100)
    return {
        "id": avatax_id,
        "code": inv.id,
        "companyCode": spec.company_code,
        "type": "SalesInvoice",
        "date": inv.day.isoformat(),
        "status": "Committed",
        "customerCode": inv.customer,
        "currencyCode": spec.currency,
        "totalAmount": str(inv.revenue),
        "totalTax": str(tax),
        "totalTaxable": str(inv.revenue),
        "lines": [
            {
                "id": 1,
                "lineNumber": "1",
                "quantity": "1",
                "lineAmount": str(inv.revenue),
                "tax": str(tax),
                "taxableAmount": str(inv.revenue),
                "taxCode": "SW054000",
                "itemCode": "seats",
                "description": "Platform seats",
                "rate": rate,
            }
        ],
        "addresses": [],
        "summary": [{"country": "", "region": "", "rate": rate, "tax": str(tax), "taxName": "Seeded sales tax"}],
        "modifiedDate": f"{inv.day.isoformat()}T00:00:00Z",
    }


def _journal_entry(
    spec: PeriodSpec,
    internal_id: int,
    external_id: str,
    day: date,
    memo: str,
    currency: str,
    lines: list[tuple[str, Decimal, bool]],
    **custom: str,
) -> dict[str, Any]:
    """A journal entry as the record service stores it; lines are (account, amount,
    is_debit), zero lines left out."""
    items: list[dict[str, Any]] = []
    for account, amount, is_debit in lines:
        if amount == 0:
            continue
        items.append(
            {
                "line": len(items),
                "account": {"id": account},
                "debit": str(amount) if is_debit else None,
                "credit": None if is_debit else str(amount),
                "memo": "",
            }
        )
    return {
        "externalId": external_id,
        "subsidiary": {"id": spec.subsidiary},
        "currency": {"refName": currency},
        "tranDate": day.isoformat(),
        "memo": memo,
        "line": {"items": items},
        **custom,
        "id": str(internal_id),
        "tranId": f"JE{internal_id:06d}",
    }


def _invoice_lines(inv: SeededInvoice, extra: Decimal = Decimal(0)) -> list[tuple[str, Decimal, bool]]:
    return [
        (RECEIVABLE, inv.total + extra, True),
        (DEFERRED, inv.revenue + extra, False),
        (TAX_PAYABLE, inv.tax, False),
    ]


# -- seeding ---------------------------------------------------------------------------------------


def seed_period(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    spec = PeriodSpec(body)
    chosen = _choose_breaks(spec)
    by_invoice = {i: kind for kind, targets in chosen.items() for i in targets}
    with store.tx() as tx:
        if tx.get("stripe", "customer", f"cus_recon_{spec.tag}_0") is not None:
            raise SeedError(f"tag {spec.tag!r} is already seeded in this database: use another tag")
        sap = _sap_ledger(tx, spec)
        for contract, _ in spec.revenue:
            external_id = f"revrec-{contract}-{spec.period}"
            if (
                sap.already_posted(tx, external_id)
                if sap
                else tx.get("netsuite", "externalId", f"journalEntry:{external_id}") is not None
            ):
                raise SeedError(f"revenue of {contract} in {spec.period} is already posted")
        state = _Counters(
            next_entry=tx.count("netsuite", "journalEntry") + 101, next_tax=tx.count("avatax", "transaction") + 1
        )
        try:
            written = tx.insert_many(_documents(spec, by_invoice, state, sap))
        except SeedRefused as refused:
            raise SeedError(str(refused)) from None
        if sap:
            sap.close(tx)
    store.refresh_statistics()
    return {
        "tag": spec.tag,
        "period": spec.period,
        "from": spec.first.isoformat(),
        "to": (spec.last + timedelta(days=1)).isoformat(),
        "currency": spec.currency,
        "stripe_account": spec.stripe_account,
        "company_code": spec.company_code,
        "subsidiary": spec.subsidiary,
        "erp": spec.erp,
        "created": {
            "customers": CUSTOMERS,
            "invoices": spec.invoices,
            "paid_invoices": state.paid,
            "tax_documents": state.tax_documents,
            "journal_entries": state.entries,
            "revenue_entries": len(spec.revenue),
            "documents": written,
        },
        "invoice_ids": {
            "first": f"in_recon_{spec.tag}_{0:06d}" if spec.invoices else "",
            "last": f"in_recon_{spec.tag}_{spec.invoices - 1:06d}" if spec.invoices else "",
        },
        "totals": {"revenue": str(state.revenue), "tax": str(state.tax), "total": str(state.revenue + state.tax)},
        "breaks": {
            kind: (
                [f"in_recon_{spec.tag}_ghost_{k}" for k in range(spec.breaks[kind])]
                if kind == "missing_in_billing"
                else [f"in_recon_{spec.tag}_{i:06d}" for i in sorted(targets)]
            )
            for kind, targets in chosen.items()
        },
        "revenue": [
            {"contract_id": c, "external_id": f"revrec-{c}-{spec.period}", "amount": str(a)} for c, a in spec.revenue
        ],
    }


class _Counters:
    def __init__(self, *, next_entry: int, next_tax: int):
        self.next_entry = next_entry
        self.next_tax = next_tax
        self.paid = 0
        self.tax_documents = 0
        self.entries = 0
        self.revenue = Decimal(0)
        self.tax = Decimal(0)


def _sap_ledger(tx: Tx, spec: PeriodSpec) -> SapLedger | None:
    if spec.erp != "sap":
        return None
    try:
        return SapLedger(tx, spec.subsidiary, spec.currency, spec.logical_system, RECEIVABLE)
    except SeedRefused as refused:
        raise SeedError(str(refused)) from None


def _documents(
    spec: PeriodSpec, by_invoice: dict[int, str], state: _Counters, sap: SapLedger | None = None
) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """Every document of the period, in creation order: Stripe, then AvaTax, then the ERP's
    per invoice (so each system's insertion order follows the invoices' dates)."""

    def entry(
        external_id: str,
        day: date,
        memo: str,
        currency: str,
        lines: list[tuple[str, Decimal, bool]],
        customer: str = "",
        **custom: str,
    ) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
        state.entries += 1
        if sap is not None:
            yield from sap.entry(
                external_id,
                day,
                memo,
                currency,
                lines,
                customer=customer,
                invoice=custom.get("custbody_o2c_invoice", ""),
                contract=custom.get("custbody_o2c_contract", ""),
            )
            return
        internal_id = state.next_entry
        state.next_entry += 1
        record = _journal_entry(spec, internal_id, external_id, day, memo, currency, lines, **custom)
        yield "netsuite", "journalEntry", str(internal_id), record
        ref = f"journalEntry:{external_id}"
        yield "netsuite", "externalId", ref, {"id": ref, "internalId": str(internal_id)}

    def tax_document(inv: SeededInvoice, delta: Decimal) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
        document = _avatax_document(spec, inv, state.next_tax, tax_delta=delta)
        state.next_tax += 1
        state.tax_documents += 1
        yield "avatax", "transaction", f"{spec.company_code}|SalesInvoice|{inv.id}", document

    for k in range(CUSTOMERS):
        customer = _stripe_customer(spec, k)
        yield "stripe", "customer", customer["id"], customer
    if sap is not None:
        yield from sap.partners(
            [(f"cus_recon_{spec.tag}_{k}", f"Recon customer {spec.tag} {k}") for k in range(CUSTOMERS)]
        )
    for i in range(spec.invoices):
        inv = SeededInvoice(spec, i)
        kind = by_invoice.get(i, "")
        state.paid += inv.paid
        state.revenue += inv.revenue
        state.tax += inv.tax
        yield "stripe", "invoice", inv.id, _stripe_invoice(spec, inv)
        yield from tax_document(inv, spec.one_minor if kind == "tax_mismatch" else Decimal(0))
        if kind == "missing_in_erp":
            continue
        currency = spec.other_currency if kind == "currency_mismatch" else spec.currency
        extra = Decimal(1) if kind == "amount_mismatch" else Decimal(0)
        yield from entry(
            f"{inv.workflow}-invoice",
            inv.day,
            f"Invoice {inv.id}",
            currency,
            _invoice_lines(inv, extra),
            inv.customer,
            custbody_o2c_invoice=inv.id,
        )
        if kind == "duplicate_posting":
            yield from entry(
                f"manual-{inv.id}",
                inv.day,
                f"Invoice {inv.id} (posted by hand)",
                spec.currency,
                _invoice_lines(inv),
                inv.customer,
                custbody_o2c_invoice=inv.id,
            )
        if inv.paid and kind != "status_mismatch":
            yield from entry(
                f"payment-{inv.id}",
                inv.day,
                f"Payment of {inv.id}",
                spec.currency,
                [(CASH, inv.total, True), (RECEIVABLE, inv.total, False)],
                inv.customer,
                custbody_o2c_invoice=inv.id,
            )
    for k in range(spec.breaks["missing_in_billing"]):
        ghost = SeededInvoice(spec, spec.invoices + k, ghost=k)
        yield from tax_document(ghost, Decimal(0))
        yield from entry(
            f"{ghost.workflow}-invoice",
            ghost.day,
            f"Invoice {ghost.id}",
            spec.currency,
            _invoice_lines(ghost),
            ghost.customer,
            custbody_o2c_invoice=ghost.id,
        )
    for contract, amount in spec.revenue:
        yield from entry(
            f"revrec-{contract}-{spec.period}",
            spec.last,
            f"Revenue of {contract} in {spec.period}",
            spec.currency,
            [(DEFERRED, amount, True), (REVENUE, amount, False)],
            custbody_o2c_contract=contract,
        )
