"""Process statuses and the search attributes an operator filters on in the Temporal UI."""

from __future__ import annotations

from enum import StrEnum

from temporalio.common import SearchAttributeKey


class Status(StrEnum):
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    NEEDS_ATTENTION = "needs_attention"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


TERMINAL = {Status.COMPLETED, Status.REJECTED, Status.ROLLED_BACK, Status.FAILED}

PROCESS = SearchAttributeKey.for_keyword("O2cProcess")
CUSTOMER = SearchAttributeKey.for_keyword("O2cCustomer")
CONTRACT = SearchAttributeKey.for_keyword("O2cContract")
INVOICE = SearchAttributeKey.for_keyword("O2cInvoice")
STATUS = SearchAttributeKey.for_keyword("O2cStatus")

# Registered on the server by `o2c dev` and the tests; a production namespace needs them too.
SEARCH_ATTRIBUTES = [PROCESS, CUSTOMER, CONTRACT, INVOICE, STATUS]
