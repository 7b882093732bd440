"""The card networks' attempt ledger, kept in o2c's database: one reservation per retry.

Visa allows 15 reattempts of one card in 30 days, however many invoices are charged to it,
so every dunning reserves an attempt on the card before it retries. The store reserves
atomically (two dunnings racing for the last attempt: one wins) and idempotently per
attempt key (an activity retry after a lost answer finds its own reservation).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from temporalio import activity

from activities.errors import classified, idempotency_key
from adapters.ports import CashStorePort
from canonical.models import Model


class ReserveCardAttempt(Model):
    card: str  # the card's fingerprint (Invoice.payment_method)
    step: str  # the dunning's retry step: the attempt key is derived from it and the workflow
    at: datetime  # when the attempt is made (the workflow's clock)
    limit: int  # attempts allowed on the card in the 30 days before `at`


class CardAttemptActivities:
    def __init__(self, store: CashStorePort):
        self.store = store

    @activity.defn(name="cards.reserve_attempt")
    @classified
    async def reserve_attempt(self, request: ReserveCardAttempt) -> bool:
        """True when the attempt is reserved (or was, under the same key); False when the
        card has reached its limit."""
        return await self.store.reserve_card_attempt(
            request.card, idempotency_key(request.step), at=request.at, limit=request.limit
        )

    def all(self) -> list[Callable[..., Any]]:
        return [self.reserve_attempt]
