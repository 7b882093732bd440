"""Connect: the account a request acts for (its `Stripe-Account` header) and the request
itself, as the events it causes record them; customers are seen only in their own account."""

from __future__ import annotations

import contextvars
from typing import Any

from sandbox.store import Tx
from sandbox.stripe import SYSTEM
from sandbox.stripe.errors import no_such


def customer_here(tx: Tx, customer_id: str, param: str = "customer") -> dict[str, Any]:
    """The customer, which must belong to the account this request acts for: a customer
    of another (connected) account does not exist for it, as in Stripe."""
    customer = tx.get(SYSTEM, "customer", customer_id)
    if customer is None or (customer.get("_stripe_account") or None) != current_account.get():
        raise no_such("customer", customer_id, status=400, param=param)
    return customer


# The request that caused the events being emitted (None for automatic events such as a
# renewal charge), as Stripe records it in `event.request`.
current_request: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("stripe_request", default=None)


# The connected account a request acts for (its `Stripe-Account` header), None for the
# platform account.
current_account: contextvars.ContextVar[str | None] = contextvars.ContextVar("stripe_account", default=None)
