"""The card attempt ledger of o2c's database (CashStorePort.card_attempts and
reserve_card_attempt), in memory, with the store's semantics: a reservation is atomic (two
dunnings racing for a card's last attempt: one wins) and idempotent per attempt key."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

WINDOW = timedelta(days=30)


class FakeCardLedger:
    def __init__(self) -> None:
        self.attempts: dict[str, tuple[str, datetime]] = {}  # attempt key -> (card, at)
        self.refused: list[str] = []  # attempt keys refused at the limit
        self._lock = asyncio.Lock()

    async def card_attempts(self, card: str, *, since: datetime) -> int:
        return sum(1 for c, at in self.attempts.values() if c == card and at > since)

    async def reserve_card_attempt(self, card: str, attempt_key: str, *, at: datetime, limit: int) -> bool:
        async with self._lock:
            if attempt_key in self.attempts:
                return True
            # Yield inside the critical section, as a database round trip would: without the
            # lock two reservations would both see room for the last attempt.
            await asyncio.sleep(0)
            if await self.card_attempts(card, since=at - WINDOW) >= limit:
                self.refused.append(attempt_key)
                return False
            self.attempts[attempt_key] = (card, at)
            return True

    def seed(self, card: str, at: datetime, n: int, prefix: str = "earlier") -> None:
        """Attempts other dunnings made on the card before."""
        for i in range(n):
            self.attempts[f"{prefix}/{i}"] = (card, at)
