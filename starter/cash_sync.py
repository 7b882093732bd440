"""Billing's open invoices into o2c's cash store, for cash application to match against.

    sync_open_items(payments, store, entities, entity="US01")

The webhook ingress keeps the store current as billing finalises, voids and settles
invoices (starter/webhooks.py); this is the full read: for each legal entity, every open
invoice of its billing account, a page at a time, kept as an open item. Run it once when o2c
starts taking cash, and whenever webhooks may have been missed. It is safe to run at any
time: the store only ever lowers a balance, so cash applied in o2c meanwhile stays applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adapters.ports import CashStorePort, PaymentsPort
from canonical.cash.models import OpenItem
from canonical.models import Invoice, LegalEntity, unknown_entity
from canonical.money import Money

PAGE_SIZE = 100


class UnknownEntity(ValueError):
    """A legal entity o2c is not configured with."""


@dataclass(frozen=True)
class SyncedEntity:
    """What one legal entity's billing account held open."""

    legal_entity: str
    billing_account: str  # "" for the platform's own account
    invoices: int = 0
    skipped: list[str] = field(default_factory=list)  # invoices with nothing to receive
    balances: dict[str, Money] = field(default_factory=dict)  # per currency


def open_item_of(invoice: Invoice, legal_entity: str) -> OpenItem | None:
    """The invoice as an open item, or None when it has nothing to receive (a zero or
    negative total). Its balance is what billing still has due, within zero and the total."""
    zero = Money.zero(invoice.currency)
    if invoice.total <= zero:
        return None
    remaining = invoice.total if invoice.amount_remaining is None else invoice.amount_remaining
    balance = min(max(remaining, zero, key=lambda m: m.amount), invoice.total, key=lambda m: m.amount)
    return OpenItem(
        invoice_id=invoice.id,
        number=invoice.number,
        customer=invoice.account_id,
        legal_entity=legal_entity,
        total=invoice.total,
        balance=balance,
        issued_on=invoice.created,
        due_on=invoice.due_date,
    )


def entities_to_sync(entities: list[LegalEntity], code: str = "") -> list[LegalEntity]:
    if not code:
        return list(entities)
    chosen = [e for e in entities if e.code == code]
    if not chosen:
        raise UnknownEntity(unknown_entity(code, entities))
    return chosen


async def sync_open_items(
    payments: PaymentsPort,
    store: CashStorePort,
    entities: list[LegalEntity],
    *,
    entity: str = "",
    page_size: int = PAGE_SIZE,
) -> list[SyncedEntity]:
    """Page every open invoice of each legal entity's billing account (or of `entity`'s
    alone) into the store, a page per write. An unknown `entity` raises UnknownEntity
    before billing is asked anything."""
    chosen = entities_to_sync(entities, entity)
    synced = []
    for legal_entity in chosen:
        count, cursor = 0, ""
        skipped: list[str] = []
        balances: dict[str, Money] = {}
        while True:
            page = await payments.open_invoices_page(
                billing_account=legal_entity.billing_account, cursor=cursor, limit=page_size
            )
            items = []
            for invoice in page.items:
                item = open_item_of(invoice, legal_entity.code)
                if item is None:
                    skipped.append(invoice.id)
                    continue
                items.append(item)
                currency = item.balance.currency
                balances[currency] = balances.get(currency, Money.zero(currency)) + item.balance
            if items:
                await store.upsert_open_items(items)
            count += len(items)
            if not page.next_cursor or page.next_cursor == cursor:
                break
            cursor = page.next_cursor
        synced.append(
            SyncedEntity(
                legal_entity=legal_entity.code,
                billing_account=legal_entity.billing_account,
                invoices=count,
                skipped=skipped,
                balances=balances,
            )
        )
    return synced
