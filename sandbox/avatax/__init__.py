"""A subset of Avalara AvaTax REST v2: create, commit, void and read transactions.

Tax = line amount x the rate of the address's region, rounded half-up to the cent per
line; the document's tax is the sum of its lines. The rate table is a documented
stand-in, not real jurisdiction data.

Error code names and numbers (MissingAddress 304, DocumentCodeConflict 303,
EntityNotFoundError 4, TransactionAlreadyCancelled 198, MissingLine 311,
AuthenticationException 30) come from the ErrorCodeId enum of Avalara's published
SDKs. Which of them the real service picks for a *partially* filled address
(we answer MissingAddress), and that voiding a voided document is an error rather
than a no-op, is unverified.
"""

SYSTEM = "avatax"
