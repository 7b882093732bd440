"""Cash application: which open invoices a receipt pays, by the rules of DOMAIN.md in their order.

1. The remittance names open invoices (by id or number):
   one invoice, amount equal to its balance → EXACT_REFERENCE; less → PARTIAL_REFERENCE;
   more → OVERPAID_REFERENCE (its balance applied, the rest unapplied on account);
   several invoices whose balances add up to the amount → COMBINATION.
2. No usable reference, the payer maps to one customer with exactly one open invoice of that
   amount → UNIQUE_AMOUNT.
3. The amount equals the sum of several open invoices of that customer, and exactly one such
   set exists (bounded search) → COMBINATION.
4. Anything else is unapplied cash (UNMATCHED) with ranked suggestions for an operator.

Exceptions that a person settles: a named invoice already settled (DUPLICATE_SETTLEMENT), a
named invoice of another legal entity than the one that received the money (CROSS_ENTITY), a
named invoice in another currency (unmatched, with the reason).

Everything here is exact integer arithmetic in minor units and deterministic: the same
receipts and book give the same matches. For every match, applied + unapplied equals the
receipt's amount, no application exceeds its invoice's balance, and no invoice is applied
twice in one match.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from canonical.cash.models import (
    Application,
    CashMatch,
    ExceptionKind,
    MatchRule,
    OpenItem,
    OpenItemBook,
    Receipt,
    Suggestion,
)
from canonical.cash.payers import PayerDirectory, normalise_name
from canonical.money import Money

# The combination search is a subset sum, exponential in the worst case. It looks at the
# customer's open items oldest due first, at most this many (a customer paying a batch of
# invoices pays recent ones; 20 items are about a million subsets, pruned far below that) ...
MAX_COMBINATION_ITEMS = 20
# ... and visits at most this many search nodes (a few milliseconds). A search cut short
# cannot prove its set is the only one, so it matches nothing and only suggests.
MAX_COMBINATION_STEPS = 20_000
MAX_SUGGESTIONS = 5


def normalise_reference(reference: str) -> str:
    """Invoice ids and numbers compare without case and spaces ("inv 0042" names "INV-0042"
    only if written so; punctuation counts, spaces do not)."""
    return "".join(reference.split()).upper()


def reference_keys(receipt: Receipt) -> list[str]:
    """What the receipt's payer named, normalised, in the order they wrote it, once each:
    the source's own invoice (Stripe) first, then the remittance's references."""
    keys: list[str] = []
    for reference in (receipt.invoice_hint, *receipt.references):
        key = normalise_reference(reference)
        if key and key not in keys:
            keys.append(key)
    return keys


@dataclass(frozen=True)
class Candidates:
    """What one receipt may be matched against.

    referenced: the open items its references name (any customer, any entity), in the order
      named. customer: who the payer is ("" when unknown) and customer_basis how we know it.
    customer_items: that customer's open items. same_amount_elsewhere: open items of other
      customers whose balance equals the receipt's amount (suggestions only)."""

    referenced: Sequence[OpenItem] = ()
    customer: str = ""
    customer_basis: str = ""
    customer_items: Sequence[OpenItem] = ()
    same_amount_elsewhere: Sequence[OpenItem] = ()


def match_receipt(receipt: Receipt, candidates: Candidates) -> CashMatch:
    """Apply the rules in order; the match says which rule made it and why."""
    if receipt.amount.amount <= 0:
        raise ValueError(f"receipt {receipt.receipt_id} is not money in: {receipt.amount}")
    referenced = _distinct(candidates.referenced)
    if referenced:
        return _by_reference(receipt, referenced, candidates)
    return _without_reference(receipt, candidates)


def match_statement(receipts: Iterable[Receipt], book: OpenItemBook) -> list[CashMatch]:
    """Match a batch in order against one book. What a receipt applies lowers the balances the
    next receipts see, so two receipts for one invoice never both take its balance. A receipt
    listed twice gets its first match again."""
    view = BookView(book)
    matches: list[CashMatch] = []
    seen: dict[str, CashMatch] = {}
    for receipt in receipts:
        if receipt.receipt_id in seen:
            matches.append(seen[receipt.receipt_id])
            continue
        match = match_receipt(receipt, view.candidates(receipt))
        view.apply(match)
        seen[receipt.receipt_id] = match
        matches.append(match)
    return matches


class BookView:
    """An OpenItemBook indexed for matching, with the balances a batch has left so far."""

    def __init__(self, book: OpenItemBook) -> None:
        self._items: dict[str, OpenItem] = {}
        self._minor: dict[str, int] = {}
        self._by_reference: dict[str, list[str]] = {}
        self._by_customer: dict[str, list[str]] = {}
        self._by_balance: dict[tuple[str, int], list[str]] = {}
        for item in book.items:
            if item.invoice_id in self._items:
                continue
            self._items[item.invoice_id] = item
            self._minor[item.invoice_id] = item.balance.minor
            for key in {normalise_reference(item.invoice_id), normalise_reference(item.number)} - {""}:
                self._by_reference.setdefault(key, []).append(item.invoice_id)
            self._by_customer.setdefault(item.customer, []).append(item.invoice_id)
            self._by_balance.setdefault((item.balance.currency, item.balance.minor), []).append(item.invoice_id)
        self.directory = PayerDirectory.from_payers(book.payers)

    def item(self, invoice_id: str) -> OpenItem:
        """The item with the balance left after what this batch applied."""
        item = self._items[invoice_id]
        left = self._minor[invoice_id]
        if left == item.balance.minor:
            return item
        return item.model_copy(update={"balance": Money.from_minor(left, item.balance.currency)})

    def candidates(self, receipt: Receipt) -> Candidates:
        referenced: list[str] = []
        for key in reference_keys(receipt):
            for invoice_id in self._by_reference.get(key, ()):
                if invoice_id not in referenced:
                    referenced.append(invoice_id)
        customer, basis = self.directory.customer_of(receipt)
        if not customer and referenced:
            customer = self._items[referenced[0]].customer
            basis = "the invoice it names"
        if self._reference_decides(receipt, referenced):
            # The reference rules settle it: the customer's other items would only feed
            # suggestions the match will not have (most receipts of a statement are these).
            return Candidates(referenced=[self.item(i) for i in referenced], customer=customer, customer_basis=basis)
        own = self._by_customer.get(customer, []) if customer else []
        amount = (receipt.amount.currency, receipt.amount.minor)
        elsewhere = [
            invoice_id
            for invoice_id in dict.fromkeys(self._by_balance.get(amount, ()))
            if self._minor[invoice_id] == amount[1] and self._items[invoice_id].customer != customer
        ]
        return Candidates(
            referenced=[self.item(i) for i in referenced],
            customer=customer,
            customer_basis=basis,
            customer_items=[self.item(i) for i in own if self._minor[i] > 0],
            same_amount_elsewhere=[self.item(i) for i in elsewhere[:MAX_SUGGESTIONS]],
        )

    def _reference_decides(self, receipt: Receipt, referenced: Sequence[str]) -> bool:
        """The named invoices are of one customer and one of them can take this cash."""
        items = [self._items[i] for i in referenced]
        if len({item.customer for item in items}) != 1:
            return False
        return any(
            self._minor[item.invoice_id] > 0
            and item.legal_entity == receipt.legal_entity
            and item.balance.currency == receipt.amount.currency
            for item in items
        )

    def apply(self, match: CashMatch) -> None:
        for application in match.applications:
            left = self._minor[application.invoice_id] - application.amount.minor
            if left < 0:  # match_receipt never applies above a balance; a caller's match might
                raise ValueError(f"{match.receipt_id} applies more than {application.invoice_id} has open")
            self._minor[application.invoice_id] = left
            currency = application.amount.currency
            self._by_balance.setdefault((currency, left), []).append(application.invoice_id)


# -- rule 1: the remittance names invoices ----------------------------------------------------


def _by_reference(receipt: Receipt, referenced: list[OpenItem], candidates: Candidates) -> CashMatch:
    named = ", ".join(item.invoice_id for item in referenced)
    customers = sorted({item.customer for item in referenced})
    if len(customers) > 1:
        return _unmatched(
            receipt,
            candidates,
            f"names invoices of several customers ({', '.join(customers)}): {named}",
            customer=candidates.customer,
        )
    customer = customers[0]
    currency = receipt.amount.currency
    foreign = [item for item in referenced if item.balance.currency != currency]
    if foreign:
        return _unmatched(
            receipt,
            candidates,
            f"currency mismatch: the receipt is in {currency}, "
            + ", ".join(f"{item.invoice_id} in {item.balance.currency}" for item in foreign),
            customer=customer,
            named=foreign,
        )
    other_entity = [item for item in referenced if item.legal_entity != receipt.legal_entity]
    if other_entity:
        return _unmatched(
            receipt,
            candidates,
            f"received by {receipt.legal_entity} for "
            + ", ".join(f"{item.invoice_id} of {item.legal_entity}" for item in other_entity),
            customer=customer,
            exception=ExceptionKind.CROSS_ENTITY,
            named=other_entity,
        )
    open_items = [item for item in referenced if item.balance.minor > 0]
    settled = [item for item in referenced if item.balance.minor <= 0]
    if not open_items:
        return _unmatched(
            receipt,
            candidates,
            f"pays {named}, already settled",
            customer=customer,
            exception=ExceptionKind.DUPLICATE_SETTLEMENT,
        )
    amount = receipt.amount.minor
    exact = [item for item in open_items if item.balance.minor == amount]
    if len(exact) == 1 and len(open_items) > 1:
        # Named several, paid exactly one of them: that one.
        return _applied(
            receipt, MatchRule.EXACT_REFERENCE, customer, [(exact[0], amount)], f"pays {exact[0].invoice_id} in full"
        )
    balances = sum(item.balance.minor for item in open_items)
    if len(open_items) == 1:
        item = open_items[0]
        if amount == balances:
            return _applied(
                receipt, MatchRule.EXACT_REFERENCE, customer, [(item, amount)], f"pays {item.invoice_id} in full"
            )
        if amount < balances:
            return _applied(
                receipt,
                MatchRule.PARTIAL_REFERENCE,
                customer,
                [(item, amount)],
                f"pays {receipt.amount} of {item.balance} open on {item.invoice_id}",
            )
    elif amount == balances:
        return _applied(
            receipt,
            MatchRule.COMBINATION,
            customer,
            [(item, item.balance.minor) for item in open_items],
            f"pays {', '.join(item.invoice_id for item in open_items)} in full",
        )
    elif amount < balances:
        subsets, complete = _subsets_summing(open_items, amount)
        if len(subsets) == 1 and complete:
            chosen = subsets[0]
            return _applied(
                receipt,
                MatchRule.COMBINATION,
                customer,
                [(item, item.balance.minor) for item in chosen],
                f"pays {', '.join(item.invoice_id for item in chosen)} in full, of the invoices it names",
            )
        # Less than the invoices named: the oldest due are paid first, the last one in part.
        plan = _oldest_first(open_items, amount)
        return _applied(
            receipt,
            MatchRule.PARTIAL_REFERENCE,
            customer,
            plan,
            f"pays {receipt.amount} of {Money.from_minor(balances, currency)} open on {named}, oldest due first",
        )
    # More than everything named is open: the balances are applied, the rest stays unapplied.
    # When some named invoice was settled already, the rest is (likely) its second payment.
    rest = Money.from_minor(amount - balances, currency)
    if settled:
        exception = ExceptionKind.DUPLICATE_SETTLEMENT
        why = f"; {', '.join(item.invoice_id for item in settled)} already settled"
    else:
        exception = ExceptionKind.ON_ACCOUNT
        why = ""
    return _applied(
        receipt,
        MatchRule.OVERPAID_REFERENCE,
        customer,
        [(item, item.balance.minor) for item in open_items],
        f"pays {', '.join(item.invoice_id for item in open_items)} in full and {rest} more, unapplied on account{why}",
        exception=exception,
    )


# -- rules 2 and 3: no reference, the payer's customer ----------------------------------------


def _without_reference(receipt: Receipt, candidates: Candidates) -> CashMatch:
    customer = candidates.customer
    if not customer:
        why = candidates.customer_basis or "the payer maps to no customer"
        return _unmatched(receipt, candidates, f"no invoice named and {why}")
    currency = receipt.amount.currency
    amount = receipt.amount.minor
    usable = [
        item
        for item in _distinct(candidates.customer_items)
        if item.customer == customer and item.balance.currency == currency and item.balance.minor > 0
    ]
    if not usable:
        return _unmatched(
            receipt, candidates, f"no invoice named and {customer} has nothing open in {currency}", customer=customer
        )
    same = [item for item in usable if item.balance.minor == amount]
    if len(same) == 1:
        item = same[0]
        if item.legal_entity != receipt.legal_entity:
            return _unmatched(
                receipt,
                candidates,
                f"received by {receipt.legal_entity}; the one open invoice of that amount, {item.invoice_id}, is of {item.legal_entity}",
                customer=customer,
                exception=ExceptionKind.CROSS_ENTITY,
                named=[item],
            )
        return _applied(
            receipt,
            MatchRule.UNIQUE_AMOUNT,
            customer,
            [(item, amount)],
            f"{customer} ({candidates.customer_basis}) has one open invoice of {receipt.amount}: {item.invoice_id}",
        )
    if len(same) > 1:
        return _unmatched(
            receipt,
            candidates,
            f"{customer} has {len(same)} open invoices of {receipt.amount}",
            customer=customer,
        )
    own_entity = [item for item in usable if item.legal_entity == receipt.legal_entity]
    pool = sorted(own_entity, key=_due_order)[:MAX_COMBINATION_ITEMS]
    subsets, complete = _subsets_summing(pool, amount)
    if len(subsets) == 1 and complete:
        chosen = subsets[0]
        return _applied(
            receipt,
            MatchRule.COMBINATION,
            customer,
            [(item, item.balance.minor) for item in chosen],
            f"equals {customer}'s open {', '.join(item.invoice_id for item in chosen)} together",
        )
    if subsets:
        why = (
            f"{len(subsets)} sets of {customer}'s invoices add up to {receipt.amount}"
            if complete
            else (f"the search for invoices of {customer} adding up to {receipt.amount} was cut short")
        )
    else:
        why = f"no invoice named and nothing of {customer} adds up to {receipt.amount}"
    return _unmatched(receipt, candidates, why, customer=customer, subsets=subsets)


def _subsets_summing(items: Sequence[OpenItem], target: int) -> tuple[list[list[OpenItem]], bool]:
    """Sets of at least two items whose balances add up to target: at most two (one is a
    match, two are ambiguous), and whether the search was complete."""
    ordered = sorted(items, key=lambda item: (-item.balance.minor, item.invoice_id))
    balances = [item.balance.minor for item in ordered]
    suffix = [0] * (len(balances) + 1)
    for i in range(len(balances) - 1, -1, -1):
        suffix[i] = suffix[i + 1] + balances[i]
    found: list[tuple[int, ...]] = []
    steps = 0

    class _Stop(Exception):
        pass

    def walk(start: int, remaining: int, chosen: tuple[int, ...]) -> None:
        nonlocal steps
        for i in range(start, len(balances)):
            steps += 1
            if steps > MAX_COMBINATION_STEPS:
                raise _Stop
            if suffix[i] < remaining:
                return  # balances only get smaller from here on
            balance = balances[i]
            if balance > remaining:
                continue
            if balance == remaining:
                if chosen:
                    found.append((*chosen, i))
                    if len(found) >= 2:
                        raise _Stop
                continue
            walk(i + 1, remaining - balance, (*chosen, i))

    complete = True
    try:
        walk(0, target, ())
    except _Stop:
        complete = len(found) >= 2  # two sets found settle it: the answer is "ambiguous"
    return [sorted((ordered[i] for i in subset), key=_due_order) for subset in found], complete


def _oldest_first(items: Sequence[OpenItem], amount: int) -> list[tuple[OpenItem, int]]:
    plan = []
    left = amount
    for item in sorted(items, key=_due_order):
        if left <= 0:
            break
        part = min(left, item.balance.minor)
        plan.append((item, part))
        left -= part
    return plan


def _due_order(item: OpenItem) -> tuple[str, str, str]:
    due = item.due_on or item.issued_on
    return (due.isoformat() if due else "9999-12-31", item.number, item.invoice_id)


# -- results -----------------------------------------------------------------------------------


def _applied(
    receipt: Receipt,
    rule: MatchRule,
    customer: str,
    plan: Sequence[tuple[OpenItem, int]],
    explanation: str,
    *,
    exception: ExceptionKind | None = None,
) -> CashMatch:
    currency = receipt.amount.currency
    applications = [
        Application(
            invoice_id=item.invoice_id, amount=Money.from_minor(minor, currency), erp_document=item.erp_document
        )
        for item, minor in plan
    ]
    unapplied = receipt.amount.minor - sum(minor for _, minor in plan)
    return CashMatch(
        receipt_id=receipt.receipt_id,
        rule=rule,
        customer=customer,
        applications=applications,
        unapplied=Money.from_minor(unapplied, currency),
        exception=exception,
        explanation=explanation,
    )


def _unmatched(
    receipt: Receipt,
    candidates: Candidates,
    explanation: str,
    *,
    customer: str = "",
    exception: ExceptionKind = ExceptionKind.UNMATCHED,
    named: Sequence[OpenItem] = (),
    subsets: Sequence[Sequence[OpenItem]] = (),
) -> CashMatch:
    return CashMatch(
        receipt_id=receipt.receipt_id,
        rule=MatchRule.UNMATCHED,
        customer=customer,
        unapplied=receipt.amount,
        exception=exception,
        explanation=explanation,
        suggestions=suggest(receipt, candidates, named=named, subsets=subsets),
    )


def suggest(
    receipt: Receipt,
    candidates: Candidates,
    *,
    named: Sequence[OpenItem] = (),
    subsets: Sequence[Sequence[OpenItem]] = (),
) -> list[Suggestion]:
    """At most MAX_SUGGESTIONS guesses for an operator, best first (score 0-100, ties by
    invoice id). Only open items in the receipt's currency are suggested."""
    currency = receipt.amount.currency
    amount = receipt.amount.minor
    payer = normalise_name(receipt.payer_name)
    ranked: dict[tuple[str, ...], tuple[int, str, int]] = {}

    def offer(items: Sequence[OpenItem], score: int, why: str) -> None:
        if not items or any(item.balance.currency != currency or item.balance.minor <= 0 for item in items):
            return
        key = tuple(item.invoice_id for item in items)
        score = max(0, min(100, score))
        if key not in ranked or ranked[key][0] < score:
            ranked[key] = (score, why, sum(item.balance.minor for item in items))

    for item in named:
        offer([item], 70, f"named by the remittance ({item.legal_entity}, {item.balance})")
    for subset in subsets:
        offer(list(subset), 75, f"together equal to {receipt.amount}")
    own = [item for item in _distinct(candidates.customer_items) if item.balance.currency == currency]
    for item in own:
        if item.balance.minor == amount:
            offer([item], 85, f"an open invoice of {item.customer} of the same amount")
        else:
            closeness = 1 - abs(item.balance.minor - amount) / max(item.balance.minor, amount)
            offer([item], int(60 * closeness), f"nearest balance of {item.customer}: {item.balance}")
    for item in _distinct(candidates.referenced):
        if item.balance.minor != amount:
            closeness = 1 - abs(item.balance.minor - amount) / max(item.balance.minor, amount)
            offer([item], int(55 * closeness), f"named by the remittance, {item.balance} open")
    for item in candidates.same_amount_elsewhere:
        similarity = SequenceMatcher(None, payer, normalise_name(item.customer)).ratio() if payer else 0.0
        offer([item], 40 + int(40 * similarity), f"same amount, customer {item.customer}")
    best = sorted(ranked.items(), key=lambda kv: (-kv[1][0], kv[0]))[:MAX_SUGGESTIONS]
    return [
        Suggestion(invoice_ids=list(ids), amount=Money.from_minor(minor, currency), score=score, why=why)
        for ids, (score, why, minor) in best
    ]


def _distinct(items: Iterable[OpenItem]) -> list[OpenItem]:
    seen: set[str] = set()
    result = []
    for item in items:
        if item.invoice_id not in seen:
            seen.add(item.invoice_id)
            result.append(item)
    return result
