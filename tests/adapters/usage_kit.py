"""Master data and events for the usage tests: a meter, customers of a test's own (the
PostgreSQL database is shared across runs), and a ledger on a fresh store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa

from adapters.storage.usage import UsageLedger
from canonical.money import Money
from canonical.usage.models import Meter, MeteredPrice, UsageCustomer, UsageEvent

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
API_CALLS = Meter(event_name="api_calls", display_name="API calls", unit="API calls", max_value=1_000_000)
STORAGE = Meter(event_name="storage_gb", display_name="Storage", unit="GB")


def customer(name: str = "") -> UsageCustomer:
    name = name or f"cus_{uuid.uuid4().hex[:12]}"
    return UsageCustomer(
        customer=name,
        subscription_id=f"sub_{name}",
        currency="USD",
        legal_entity="US01",
        prices=[
            MeteredPrice(meter="api_calls", price_id="price_api", unit_amount=Money.of(Decimal("0.01"), "USD")),
            MeteredPrice(meter="storage_gb", price_id="price_gb", unit_amount=Money.of(Decimal("0.10"), "USD")),
        ],
    )


def event(
    cust: str, identifier: str = "", *, value: int | float = 1, at: datetime = NOW, meter: str = "api_calls", **extra
) -> UsageEvent:
    # Identifiers of the customer's own: the PostgreSQL database keeps earlier runs' events.
    return UsageEvent(
        identifier=f"{cust}-{identifier}" if identifier else uuid.uuid4().hex,
        meter=meter,
        customer=cust,
        value=value,
        timestamp=at,
        **extra,
    )


async def seeded_ledger(url: str, *customers: UsageCustomer, **options) -> UsageLedger:
    ledger = UsageLedger(url, **options)
    await ledger.upsert_meters([API_CALLS, STORAGE])
    await ledger.upsert_customers(list(customers))
    return ledger


class FailingInserts:
    """Makes the next `times` INSERTs into usage_events fail as a dropped connection would."""

    def __init__(self, engine: sa.Engine, times: int):
        self.left = times
        self.failed = 0
        sa.event.listen(engine, "before_cursor_execute", self)

    def __call__(self, conn, cursor, statement, parameters, context, executemany):
        if self.left and statement.lstrip().upper().startswith("INSERT INTO USAGE_EVENTS"):
            self.left -= 1
            self.failed += 1
            raise sa.exc.OperationalError(statement, parameters, Exception("server closed the connection unexpectedly"))
