"""The ledger invariants of cash and credits, each side read from where it lives.

Per customer and currency, the receivable the ERP holds equals what was invoiced, less the
cash o2c applied, the credits and the write-offs:

    receivable = invoiced - cash applied - credits - write-offs

- invoiced: the A/R journal entries in the customer's name (NetSuite, receivables_of_customer:
  every entry netting a debit to Accounts Receivable on the customer's line).
- cash applied: o2c's cash store (customer_cash: matching and operators' decisions). The
  ERP's own figure, the customer payments' application links to those entries, must be the
  same; a payment posted twice, or not at all, shows here.
- credits: the customer's credit memos, less what was refunded of them (applied to the
  entries, or left on the customer's account).
- write-offs: credits to Accounts Receivable by entries that book the customer's invoices but
  are not A/R documents themselves (write-offs, and reversals of a rolled-back invoice).
- receivable: what is open on the entries, less the credit memos left on account and the
  write-offs.

Per legal entity and currency, the cash received and not applied is the same three times: the
cash store's unapplied total, the exception queue's, and the ERP's (the unapplied-receipts
suspense account's balance in the entity's subsidiary, plus what its customer payments leave
unused). As o2c's database may outlive the sandbox's ERP, a test takes the figures when it
begins (unapplied_now) and the check compares what moved on each side.

`ledger_failures` returns one line per broken invariant naming the customer or entity and both
figures; `assert_ledger` fails a test with them. Called at the end of the integration tests
that book money and by the chaos run. For an entity on SAP, `sap_documents` reads its company
code's documents and `sap_duplicates`, `sap_unbalanced` and `sap_receivable_failures` check
them (see the SAP section below).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from adapters.netsuite import NetSuiteErp
from adapters.netsuite_receivables import INVOICE_FIELD
from adapters.sap import SapErp
from adapters.sap.ledger import datetime_literal, document_of
from adapters.storage.cash import SqlCashStore
from canonical.journal import ChartOfAccounts
from settings import Settings

CHART = ChartOfAccounts()
IN_LIST = 200  # ids per IN (...) of a SuiteQL query
QUEUE_LIMIT = 100_000
SAP_PAGE = 5000  # items per read of the SAP item cube


@dataclass
class CustomerLedger:
    """One customer's figures in one currency, ERP and o2c side by side."""

    customer: str
    currency: str
    invoiced: Decimal = Decimal(0)
    open: Decimal = Decimal(0)
    cash_applied_erp: Decimal = Decimal(0)
    cash_applied_o2c: Decimal = Decimal(0)
    credits: Decimal = Decimal(0)
    credits_on_account: Decimal = Decimal(0)
    write_offs: Decimal = Decimal(0)

    @property
    def receivable(self) -> Decimal:
        return self.open - self.credits_on_account - self.write_offs

    @property
    def expected(self) -> Decimal:
        return self.invoiced - self.cash_applied_o2c - self.credits - self.write_offs


async def _rows(erp: NetSuiteErp, q: str) -> list[dict[str, Any]]:
    # The adapter's SuiteQL call (its auth, paging parameters and error classes); the checks
    # read the ERP as o2c does, through its adapter, not through the sandbox's control plane.
    out: list[dict[str, Any]] = []
    while True:
        page = await erp._query(q, offset=len(out))
        rows = page.get("items") or []
        out += rows
        if not page.get("hasMore") or not rows:
            return out


def _in(ids: Iterable[str]) -> list[str]:
    listed = sorted({i for i in ids if i.isdigit()}, key=int)
    return [", ".join(listed[n : n + IN_LIST]) for n in range(0, len(listed), IN_LIST)]


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _dec(raw: Any) -> Decimal:
    return Decimal(str(raw)) if raw is not None else Decimal(0)


async def customer_ledgers(erp: NetSuiteErp, store: SqlCashStore, customer: str) -> list[CustomerLedger]:
    """The customer's figures, one per currency it was invoiced or paid in."""
    ledgers: dict[str, CustomerLedger] = {}

    def of(currency: str) -> CustomerLedger:
        return ledgers.setdefault(currency, CustomerLedger(customer, currency))

    documents = await erp.receivables_of_customer(customer)
    for document in documents:
        ledger = of(document.original.currency)
        ledger.invoiced += document.original.amount
        ledger.open += document.open.amount
    ids = {d.erp_document for d in documents}
    currency_of = {d.erp_document: d.original.currency for d in documents}

    for listed in _in(ids):
        for link in await _rows(
            erp,
            "SELECT l.previousdoc AS previousdoc, l.nexttype AS nexttype, l.foreignamount AS amount "
            f"FROM NextTransactionLineLink l WHERE l.previousdoc IN ({listed})",
        ):
            ledger = of(currency_of[str(link["previousdoc"])])
            if link["nexttype"] == "CustPymt":
                ledger.cash_applied_erp += _dec(link.get("amount"))
            elif link["nexttype"] == "CustCred":
                ledger.credits += _dec(link.get("amount"))

    entity = await erp._customer_internal_id(customer)
    if entity is not None:
        for memo in await _rows(
            erp,
            "SELECT t.id AS id, BUILTIN.DF(t.currency) AS currency, "
            "t.foreignpaymentamountunused AS unused FROM transaction t "
            f"WHERE t.type = 'CustCred' AND t.entity = {entity}",
        ):
            ledger = of(memo["currency"])
            ledger.credits += _dec(memo.get("unused"))
            ledger.credits_on_account += _dec(memo.get("unused"))

    # Write-offs and reversals: the other entries that book the customer's invoices.
    invoices = sorted({d.invoice_id for d in documents if d.invoice_id})
    others: dict[str, str] = {}  # entry id -> currency
    for invoice in invoices:
        for row in await _rows(
            erp,
            "SELECT t.id AS id, BUILTIN.DF(t.currency) AS currency FROM transaction t "
            f"WHERE t.type = 'Journal' AND t.{INVOICE_FIELD} = {_literal(invoice)}",
        ):
            if str(row["id"]) not in ids:
                others[str(row["id"])] = row["currency"]
    for listed in _in(others):
        for line in await _rows(
            erp,
            "SELECT tal.transaction AS transaction, tal.debit AS debit, tal.credit AS credit "
            f"FROM transactionaccountingline tal WHERE tal.transaction IN ({listed}) "
            f"AND tal.account = {CHART.receivable}",
        ):
            of(others[str(line["transaction"])]).write_offs += _dec(line.get("credit")) - _dec(line.get("debit"))

    for cash in await store.customer_cash(customer=customer):
        of(cash.applied.currency).cash_applied_o2c += cash.applied.amount
    return sorted(ledgers.values(), key=lambda ledger: ledger.currency)


async def unapplied_in_erp(erp: NetSuiteErp, subsidiary: str) -> dict[str, Decimal]:
    """Currency -> cash the ERP holds unapplied in the subsidiary: the suspense account's
    balance and what customer payments leave unused."""
    out: dict[str, Decimal] = defaultdict(Decimal)
    lines = await _rows(
        erp,
        "SELECT tal.transaction AS transaction, tal.debit AS debit, tal.credit AS credit "
        f"FROM transactionaccountingline tal WHERE tal.account = {CHART.unapplied_receipts}",
    )
    entries: dict[str, tuple[str, str]] = {}
    for listed in _in(str(line["transaction"]) for line in lines):
        for row in await _rows(
            erp,
            "SELECT t.id AS id, t.subsidiary AS subsidiary, BUILTIN.DF(t.currency) AS currency "
            f"FROM transaction t WHERE t.id IN ({listed})",
        ):
            entries[str(row["id"])] = (str(row["subsidiary"]), row["currency"])
    for line in lines:
        where, currency = entries.get(str(line["transaction"]), ("", ""))
        if where == subsidiary:
            out[currency] += _dec(line.get("credit")) - _dec(line.get("debit"))
    for payment in await _rows(
        erp,
        "SELECT t.id AS id, BUILTIN.DF(t.currency) AS currency, t.foreignpaymentamountunused AS unused "
        f"FROM transaction t WHERE t.type = 'CustPymt' AND t.subsidiary = {subsidiary}",
    ):
        out[payment["currency"]] += _dec(payment.get("unused"))
    return out


Unapplied = dict[tuple[str, str], tuple[Decimal, Decimal, Decimal]]


async def _unapplied(
    erp: NetSuiteErp, store: SqlCashStore, entities: Iterable[str], subsidiaries: dict[str, str]
) -> Unapplied:
    """(entity, currency) -> cash unapplied in o2c's store, in its exception queue, in the ERP."""
    out: Unapplied = {}
    totals = await store.unapplied_totals()
    for entity in sorted(set(entities)):
        queued: dict[str, Decimal] = defaultdict(Decimal)
        for waiting in await store.queue(legal_entity=entity, limit=QUEUE_LIMIT):
            queued[waiting.match.unapplied.currency] += waiting.match.unapplied.amount
        stored = {currency: money.amount for (where, currency), money in totals.items() if where == entity}
        erp_side = await unapplied_in_erp(erp, subsidiaries[entity])
        for currency in set(queued) | set(stored) | set(erp_side):
            out[(entity, currency)] = (
                stored.get(currency, Decimal(0)),
                queued.get(currency, Decimal(0)),
                erp_side.get(currency, Decimal(0)),
            )
    return out


async def unapplied_now(settings: Settings, entities: Iterable[str]) -> Unapplied:
    """The entities' unapplied cash on each side now: taken when a test begins, so that its
    checks compare what moved. o2c's database outlives the sandbox's ERP (the sandbox is
    reset each session; a PostgreSQL database is kept across runs), so the totals themselves
    may hold earlier runs' receipts."""
    erp = NetSuiteErp(settings.netsuite_base_url, settings.netsuite_token, timeout=30)
    store = SqlCashStore(settings.database_url)
    try:
        return await _unapplied(erp, store, entities, {e.code: e.erp_subsidiary for e in settings.legal_entities})
    finally:
        await erp.aclose()
        await store.aclose()


async def ledger_failures(
    settings: Settings,
    *,
    customers: Iterable[str] = (),
    entities: Iterable[str] = (),
    since: Unapplied | None = None,
) -> list[str]:
    """Every broken invariant for the customers and legal entities named, in words; the
    entities' unapplied cash as it moved since `since` (see unapplied_now) when given."""
    failures: list[str] = []
    erp = NetSuiteErp(settings.netsuite_base_url, settings.netsuite_token, timeout=30)
    store = SqlCashStore(settings.database_url)
    subsidiaries = {e.code: e.erp_subsidiary for e in settings.legal_entities}
    try:
        for customer in sorted(set(customers)):
            ledgers = await customer_ledgers(erp, store, customer)
            if not any(ledger.invoiced for ledger in ledgers):
                failures.append(f"{customer}: the ERP holds no receivable in its name, so nothing was checked")
            for ledger in ledgers:
                if ledger.receivable != ledger.expected:
                    failures.append(
                        f"{customer} {ledger.currency}: the ERP's receivable is {ledger.receivable}, but invoiced "
                        f"{ledger.invoiced} - cash applied {ledger.cash_applied_o2c} - credits {ledger.credits} "
                        f"- write-offs {ledger.write_offs} = {ledger.expected}"
                    )
                if ledger.cash_applied_erp != ledger.cash_applied_o2c:
                    failures.append(
                        f"{customer} {ledger.currency}: the ERP's customer payments apply "
                        f"{ledger.cash_applied_erp}, o2c's cash store applied {ledger.cash_applied_o2c}"
                    )
        now = await _unapplied(erp, store, entities, subsidiaries)
        for (entity, currency), figures in sorted(now.items()):
            before = (since or {}).get((entity, currency), (Decimal(0), Decimal(0), Decimal(0)))
            moved = tuple(after - earlier for after, earlier in zip(figures, before, strict=True))
            if len(set(moved)) > 1:
                failures.append(
                    f"{entity} {currency}: unapplied receipts {moved[0]} in o2c's cash store, "
                    f"{moved[1]} in the exception queue, {moved[2]} in the ERP"
                    + (" (since the test began)" if since is not None else "")
                )
    finally:
        await erp.aclose()
        await store.aclose()
    return failures


async def assert_ledger(
    settings: Settings, *, customers: Iterable[str] = (), entities: Iterable[str] = (), since: Unapplied | None = None
) -> None:
    failures = await ledger_failures(settings, customers=customers, entities=entities, since=since)
    assert not failures, "ledger invariants broken:\n" + "\n".join(failures)


# -- SAP S/4HANA -------------------------------------------------------------------------------
#
# An SAP entity's books are its company code's documents in the item cube, read through the
# adapter's own OData read. o2c posts no payments or credits there, so the invariant is the
# booking one: each document posted once (one document per DocumentReferenceID, the reference
# o2c derives from an entry's external id), each invoice booked by one open document, every
# document balanced per currency, and each customer's receivable (its debtor items) equal to
# what billing invoiced it.

SapDocuments = dict[str, list[dict[str, Any]]]  # document key -> its items


def sap_erp(settings: Settings) -> SapErp:
    return SapErp(
        settings.sap_base_url,
        settings.sap_user,
        settings.sap_password,
        logical_system=settings.sap_logical_system,
        timeout=30,
    )


async def sap_documents(settings: Settings, company_code: str, date_from: date, date_to: date) -> SapDocuments:
    """Every document the company code holds with a posting date in [date_from, date_to)."""
    erp = sap_erp(settings)
    filters = [
        f"CompanyCode eq {_literal(company_code)}",
        f"PostingDate ge {datetime_literal(date_from)}",
        f"PostingDate lt {datetime_literal(date_to)}",
    ]
    items: list[dict[str, Any]] = []
    try:
        while True:
            page = await erp._items(filters, top=SAP_PAGE, skip=len(items))
            items += page
            if len(page) < SAP_PAGE:
                break
    finally:
        await erp.aclose()
    documents: SapDocuments = {}
    for item in items:
        documents.setdefault(document_of(item), []).append(item)
    return documents


def _tag(items: list[dict[str, Any]], tag: str) -> str:
    return next(
        (str(i["DocumentItemText"])[2:] for i in items if str(i.get("DocumentItemText", "")).startswith(tag)), ""
    )


def sap_duplicates(documents: SapDocuments) -> list[str]:
    """References posted as more than one document, and invoices booked by more than one
    open invoice document."""
    references = Counter(items[0]["DocumentReferenceID"] for items in documents.values())
    found = [f"{n} SAP documents with DocumentReferenceID {ref}" for ref, n in references.items() if n > 1]
    booked = Counter(
        _tag(items, "I:")
        for items in documents.values()
        if not items[0]["IsReversal"] and not items[0]["IsReversed"] and _tag(items, "E:").endswith("-invoice")
    )
    found += [f"{n} open SAP documents book {invoice}" for invoice, n in booked.items() if invoice and n > 1]
    return found


def sap_unbalanced(documents: SapDocuments) -> list[str]:
    out = []
    for key, items in documents.items():
        balances: dict[str, Decimal] = defaultdict(Decimal)
        for item in items:
            balances[item["TransactionCurrency"]] += Decimal(str(item["AmountInTransactionCurrency"]))
        out += [f"SAP document {key}: {currency} balance {b}" for currency, b in balances.items() if b != 0]
    return out


async def sap_receivable_failures(
    settings: Settings, documents: SapDocuments, invoiced: dict[str, Decimal]
) -> list[str]:
    """Per billing customer: the receivable SAP holds in its name against what it was invoiced."""
    erp = sap_erp(settings)
    failures = []
    try:
        for customer, expected in sorted(invoiced.items()):
            number = await erp.partners.customer_number(customer)
            held = sum(
                (
                    Decimal(str(i["AmountInTransactionCurrency"]))
                    for items in documents.values()
                    for i in items
                    if number and i.get("Customer") == number
                ),
                Decimal(0),
            )
            if held != expected:
                failures.append(
                    f"{customer}: SAP holds a receivable of {held} (customer {number}), invoiced {expected}"
                )
    finally:
        await erp.aclose()
    return failures
