"""A subset of the Stripe API (version 2024-06-20): customers, subscriptions,
invoices, invoice items, customer balance transactions, credit notes, refunds, disputes.

Idempotency as Stripe documents it: the first response for an `Idempotency-Key`
(status and body, 500s included once execution began) is stored and replayed with
`Idempotent-Replayed: true`; the same key with other parameters answers 400
`idempotency_error`; requests refused before execution (auth, validation 400s, 429)
store nothing. Simplification: 4xx answers are never stored (Stripe stores some
4xx raised after execution began).

Connect: a request with `Stripe-Account: acct_...` acts for that connected account.
Idempotency keys are scoped per account (the same key in two accounts is two
requests), every object the request creates carries the sandbox-only field
`_stripe_account` (Stripe keeps this implicitly; it is not part of its objects), and
its events carry Stripe's `account` field. Creating a subscription, an invoice or an
invoice item needs the customer in the same account (else 400 "No such customer", as
in Stripe). Listing invoices is scoped to the account too. Simplification: reads of
single objects and other updates are not scoped, so an object of a connected account
can be read or changed without the header (Stripe answers 404).
"""

SYSTEM = "stripe"
