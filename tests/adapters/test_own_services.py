from __future__ import annotations

import pytest

from adapters.errors import IntegrationBug, TransientError
from canonical.models import Notification


async def test_set_seats_is_idempotent(entitlements, sandbox):
    first = await entitlements.set_seats(
        account_id="cus_acme", product="prod_seats", seats=15, idempotency_key="amend-A1/seats"
    )
    again = await entitlements.set_seats(
        account_id="cus_acme", product="prod_seats", seats=15, idempotency_key="amend-A1/seats"
    )
    assert first == again
    assert (first.seats, first.status) == (15, "active")
    assert sandbox.count("entitlements", "entitlement_change") == 1
    assert (await entitlements.get(account_id="cus_acme", product="prod_seats")).seats == 15
    assert await entitlements.get(account_id="cus_acme", product="nothing") is None
    with pytest.raises(IntegrationBug):
        await entitlements.set_seats(
            account_id="cus_acme", product="prod_seats", seats=16, idempotency_key="amend-A1/seats"
        )


async def test_entitlement_faults_are_transient(entitlements, sandbox):
    sandbox.fault("entitlements", "5xx", times=1)
    with pytest.raises(TransientError):
        await entitlements.set_seats(account_id="a", product="p", seats=1, idempotency_key="k")
    assert (await entitlements.set_seats(account_id="a", product="p", seats=1, idempotency_key="k")).seats == 1


async def test_notification_is_sent_once_per_key(notifications, sandbox):
    message = Notification(
        recipient="ap@acme.test",
        template="amendment_invoice",
        subject="Your invoice",
        body="Invoice SBX-1 for 80.65 USD",
        account_id="cus_acme",
    )
    first = await notifications.send(message, idempotency_key="amend-A1/notify")
    second = await notifications.send(message, idempotency_key="amend-A1/notify")
    assert first == second
    await notifications.send(message.model_copy(update={"account_id": "cus_other"}), idempotency_key="other")
    assert sandbox.count("notifications", "message") == 2
    [mine] = await notifications.list("cus_acme")
    assert mine["id"] == first and mine["template"] == "amendment_invoice"
