"""The kinds of receipts cash application meets, as statement entries. They are only
entries: the caller chooses the references, the amounts and which account receives them
(a cross-entity remittance is an entry on the other entity's account)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from sandbox.bank.writer import Entry


def exact(invoice: str, amount: Decimal | str, *, payer: str = "", payer_account: str = "") -> Entry:
    """A payment naming one invoice in its remittance and end-to-end id; the amount is the
    invoice's balance when the caller passes it."""
    return Entry(
        amount=Decimal(amount),
        payer_name=payer,
        payer_account=payer_account,
        remittance=invoice,
        end_to_end_id=invoice,
    )


def partial(invoice: str, amount: Decimal | str, *, payer: str = "", payer_account: str = "") -> Entry:
    """A payment naming one invoice for less than its balance (the caller picks the amount)."""
    return exact(invoice, amount, payer=payer, payer_account=payer_account)


def combined(invoices: list[str], amount: Decimal | str, *, payer: str = "", payer_account: str = "") -> Entry:
    """One payment for several invoices: all of them in the remittance text, no end-to-end id."""
    return Entry(
        amount=Decimal(amount),
        payer_name=payer,
        payer_account=payer_account,
        remittance=" ".join(invoices),
    )


def unknown_payer(amount: Decimal | str, *, payer: str = "Unknown Payer Ltd", remittance: str = "PAYMENT") -> Entry:
    """Money from someone no customer is known as, naming no invoice."""
    return Entry(amount=Decimal(amount), payer_name=payer, remittance=remittance)


def duplicate_of(entry: Entry, *, bank_reference: str = "") -> Entry:
    """The same payment made a second time: same payer, amount and remittance, another bank
    reference (the bank booked it twice because it was paid twice)."""
    return dataclasses.replace(entry, bank_reference=bank_reference)


def cross_entity(invoice: str, amount: Decimal | str, *, payer: str = "", payer_account: str = "") -> Entry:
    """A payment for another legal entity's invoice: put it on this entity's account."""
    return exact(invoice, amount, payer=payer, payer_account=payer_account)
