"""Credit notes, service credits, refunds and disputes in o2c's words."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import ConfigDict, Field

from canonical.models import Address, Model
from canonical.money import Money
from canonical.requests import MAX_LINES, BusinessId


class CreditReason(StrEnum):
    """Why a credit is given. The first four are Stripe's credit note reasons; a service
    credit (an SLA or goodwill credit from customer success) is o2c's own, sent to Stripe
    as order_change with the reason in the metadata."""

    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    ORDER_CHANGE = "order_change"
    PRODUCT_UNSATISFACTORY = "product_unsatisfactory"
    SERVICE_CREDIT = "service_credit"


class CreditSettlement(StrEnum):
    """What a credit on a paid invoice becomes (on an open invoice it lowers what is due)."""

    CUSTOMER_BALANCE = "customer_balance"
    REFUND = "refund"


class CreditedLine(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")

    line_id: BusinessId  # the invoice line (Stripe invoice line item id)
    amount: Money  # what of it is credited (tax on top, computed)


class CreditRequest(Model):
    """What someone asks to credit: an invoice's lines, or an amount of it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    credit_id: BusinessId  # the business key: credit-<credit_id>
    invoice_id: BusinessId
    reason: CreditReason
    explanation: str = Field(min_length=1)
    requested_by: str = ""  # set by the front door from the authenticated caller
    lines: list[CreditedLine] = Field(default=[], max_length=MAX_LINES)
    amount: Money | None = None  # pre-tax; exactly one of lines and amount
    settlement: CreditSettlement = CreditSettlement.CUSTOMER_BALANCE


class CreditNote(Model):
    """A credit note as billing issued it."""

    credit_note_id: str
    invoice_id: str
    number: str = ""
    status: str  # issued | void
    type: str = ""  # pre_payment | post_payment | mixed
    total: Money  # tax included
    subtotal: Money | None = None
    tax: Money | None = None
    pre_payment_amount: Money | None = None  # lowered what was due
    post_payment_amount: Money | None = None  # credit balance + refund + out of band
    refund_id: str = ""
    customer_balance_transaction: str = ""


class CreditNoteOrder(Model):
    """A credit note to issue in billing (Stripe `POST /v1/credit_notes`)."""

    invoice_id: str
    stripe_reason: str  # duplicate | fraudulent | order_change | product_unsatisfactory
    lines: list[CreditedLine] = []
    amount: Money | None = None  # pre-tax, when no lines are named
    settlement: CreditSettlement = CreditSettlement.CUSTOMER_BALANCE  # for the post-payment part
    memo: str = ""
    metadata: dict[str, str] = {}


class Refund(Model):
    refund_id: str
    charge_id: str
    amount: Money
    status: str
    reason: str = ""


class DisputeStatus(StrEnum):
    WARNING_NEEDS_RESPONSE = "warning_needs_response"
    WARNING_UNDER_REVIEW = "warning_under_review"
    WARNING_CLOSED = "warning_closed"
    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"
    PREVENTED = "prevented"


class Dispute(Model):
    dispute_id: str
    charge_id: str
    amount: Money
    reason: str
    status: DisputeStatus
    invoice_id: str = ""
    customer: str = ""
    evidence_due_by: datetime | None = None
    fee: Money | None = None  # the dispute fee withdrawn with the funds
    created: datetime | None = None

    @property
    def closed(self) -> bool:
        return self.status in (DisputeStatus.WON, DisputeStatus.LOST, DisputeStatus.WARNING_CLOSED)


class DisputeEvent(Model):
    """An inbound dispute webhook (created, funds withdrawn/reinstated, closed)."""

    event_id: str
    type: str  # charge.dispute.created | ...closed | ...funds_withdrawn | ...funds_reinstated | ...updated
    dispute: Dispute
    occurred_at: datetime


class ReturnLine(Model):
    number: str
    amount: Money  # positive: what is credited (the adapter sends it negative)
    product: str = ""
    description: str = ""


class TaxReturnRequest(Model):
    """An AvaTax ReturnInvoice referencing the original, with the original's tax date."""

    code: str
    original_code: str
    customer_code: str
    return_date: date
    original_date: date
    currency: str
    address: Address
    lines: list[ReturnLine]
