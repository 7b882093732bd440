"""A subset of NetSuite SuiteTalk REST: the record service (journal entries, customers,
o2c's AR collection cases as a custom record; customer payments, credit memos, customer
refunds and invoices, see receivables.py) and SuiteQL queries over them.

`POST /journalEntry` creates and `PUT /journalEntry/eid:{externalId}` upserts; both
answer 204 with a `Location` header holding the record's internal id. Entries must
balance, and a posting date inside a closed accounting period of the subsidiary is
refused (periods are closed through the sandbox's control plane).

Error codes: NONEXISTENT_ID, USER_ERROR and INVALID_LOGIN_ATTEMPT are NetSuite's
usual codes as far as we know; the exact code and wording NetSuite uses for a closed
period and an unbalanced entry are unverified (we answer USER_ERROR with
o:errorPath `postingPeriod` and `line`).
"""

SYSTEM = "netsuite"
