"""The business objects o2c moves between systems.

Models only grow: new fields are optional with defaults, nothing is renamed or
retyped, because running workflows hold payloads of older versions.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from canonical.money import Money
from canonical.requests import MAX_LINES, BusinessId


class Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Address(Model):
    line1: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""

    @property
    def has_tax_jurisdiction(self) -> bool:
        return bool(self.country and self.region and self.postal_code)


class LegalEntity(Model):
    """The company that books a contract: where it is taxed and which ERP it posts to."""

    code: str
    company_code: str
    functional_currency: str
    tax_registration: str = ""
    # The ERP that holds the entity's ledger, and the ledger's key there: a NetSuite
    # subsidiary's internal id, or a SAP S/4HANA company code.
    erp: Literal["netsuite", "sap"] = "netsuite"
    erp_subsidiary: str = "1"
    # The Stripe account the entity bills from (a Connect account id sent as the
    # `Stripe-Account` header); empty for the platform account itself.
    billing_account: str = ""
    country: str = "US"


# The entity a deployment books in until it configures its own (O2C_LEGAL_ENTITIES_FILE): one US
# company billing in USD on the platform's own Stripe account and NetSuite subsidiary 1.
DEFAULT_LEGAL_ENTITY = LegalEntity(code="US01", company_code="US01", functional_currency="USD", erp_subsidiary="1")
DEFAULT_ENTITIES = [DEFAULT_LEGAL_ENTITY]


ERP_NAMES = {"netsuite": "NetSuite", "sap": "SAP S/4HANA"}
# The ERPs o2c posts customer payments, credit memos and refunds in. An entity on another
# ERP gets its journal entries from o2c, and applies cash and credits in the ERP itself.
RECEIVABLES_ERPS = frozenset({"netsuite"})
# The ERPs that post a receivable only to a customer's (debtor) account, never straight to
# the receivable's G/L account: an entry that books one there names its customer.
DEBTOR_LINE_ERPS = frozenset({"sap"})
# The ERPs o2c keeps a dunning's collection case in; elsewhere the dunning runs without one
# and says so in its events.
COLLECTION_CASE_ERPS = frozenset({"netsuite"})


def receivables_refusal(entity: LegalEntity) -> str:
    """Why o2c applies no cash and posts no credit for an entity; empty when it does."""
    if entity.erp in RECEIVABLES_ERPS:
        return ""
    return (
        f"legal entity {entity.code} books in {ERP_NAMES[entity.erp]}, where o2c posts no customer "
        "payments, credit memos or refunds: apply cash and credits for it in the ERP itself"
    )


def entity_problems(entities: list[LegalEntity]) -> list[str]:
    """Why a list of legal entities cannot be booked: each entity's ledger is routed by its
    ERP subsidiary (or company code), so no two entities may share one, nor a code."""
    problems: list[str] = []
    seen_codes: set[str] = set()
    ledgers: dict[str, str] = {}
    for entity in entities:
        if entity.code in seen_codes:
            problems.append(f"legal entity {entity.code!r} is listed twice")
        seen_codes.add(entity.code)
        other = ledgers.setdefault(entity.erp_subsidiary, entity.code)
        if other != entity.code:
            problems.append(
                f"legal entities {other!r} and {entity.code!r} both book in ledger {entity.erp_subsidiary!r}"
            )
    return problems


def unknown_entity(code: str, entities: list[LegalEntity]) -> str:
    """Why a legal entity code is refused, naming the codes there are."""
    return f"unknown legal entity {code!r} (known: {', '.join(e.code for e in entities)})"


class Account(Model):
    id: str
    name: str
    email: str = ""
    billing_address: Address = Address()
    legal_entity: str = DEFAULT_LEGAL_ENTITY.code
    # Dunning: which policy applies, how strategic the account is, who owns the relationship.
    segment: str = "default"
    annual_recurring_revenue: Money | None = None
    success_owner: str = ""


class SubscriptionLine(Model):
    """One priced line of a subscription (a Stripe subscription item)."""

    item_id: str = ""
    product: str
    description: str = ""
    quantity: int = Field(ge=0)
    unit_price: Money
    discount_percent: Decimal = Decimal(0)


class Subscription(Model):
    id: str
    account_id: str
    contract_id: str
    currency: str
    status: str
    lines: list[SubscriptionLine]
    current_period_start: date
    current_period_end: date
    term_start: date
    term_end: date


class AmendedLine(Model):
    """The wanted state of one line after the amendment (quantity 0 removes it)."""

    # A misspelt or invented field (`tax_exempt`) is refused by name, never dropped.
    model_config = ConfigDict(frozen=True, extra="forbid")

    product: BusinessId  # names steps (entitlement-<product>), so their idempotency keys
    quantity: StrictInt  # "12" or true is a malformed request, not twelve seats
    unit_price: Decimal
    discount_percent: Decimal = Decimal(0)
    description: str = ""


class AmendmentRequest(Model):
    # A misspelt optional field (remaining_ssp) would otherwise be dropped without a word.
    model_config = ConfigDict(frozen=True, extra="forbid")

    amendment_id: BusinessId
    contract_id: BusinessId
    subscription_id: BusinessId
    account_id: BusinessId
    currency: str
    effective_date: date
    lines: list[AmendedLine] = Field(max_length=MAX_LINES)
    requested_by: str
    reason: str = ""
    # Finance's standalone selling price, at the effective date, of what remains of each
    # open revenue obligation of the contract (obligation id, the product, -> amount in the
    # request's currency; ASC 606-10-55-115). An obligation not named is weighed by its SSP
    # at inception. Optional: requests made before it existed carry none.
    remaining_ssp: dict[str, Decimal] = {}


class ProrationKind(StrEnum):
    CREDIT = "credit"
    CHARGE = "charge"


class ProrationLine(Model):
    product: str
    kind: ProrationKind
    quantity: int
    amount: Money
    description: str


class Proration(Model):
    period_start: date
    period_end: date
    effective_date: date
    days_remaining: int
    days_in_period: int
    lines: list[ProrationLine]
    net: Money
    monthly_before: Money
    monthly_after: Money
    max_discount_percent: Decimal


class TaxLine(Model):
    number: str
    amount: Money
    tax: Money


class TaxDocument(Model):
    code: str
    type: str
    status: str
    total_amount: Money
    total_tax: Money
    lines: list[TaxLine] = []
    # Read back by reconciliation: the document's date, customer and company.
    document_date: date | None = None
    customer_code: str = ""
    company_code: str = ""


# The product name of the invoice line that carries the sales tax o2c charges.
TAX_PRODUCT = "sales-tax"


class InvoiceLine(Model):
    product: str
    description: str
    amount: Money
    # Metered lines (usage billed in arrears): the meter's event name, the quantity Stripe
    # billed, the billing line's own id, and the service period it bills (end exclusive).
    meter: str = ""
    quantity: int | None = None
    line_id: str = ""
    period_start: date | None = None
    period_end: date | None = None
    # Credits (optional, read back from billing): the tax this line charges (Stripe's line
    # tax_amounts) and what of it, pre-tax, credit notes have credited already.
    tax: Money | None = None
    credited: Money | None = None


class Invoice(Model):
    id: str
    number: str = ""
    account_id: str
    subscription_id: str = ""
    status: str
    currency: str
    total: Money
    lines: list[InvoiceLine] = []
    amount_paid: Money | None = None
    amount_remaining: Money | None = None
    last_decline_code: str = ""  # how the last charge attempt on an open invoice was declined
    # Read back by reconciliation: when billing created it, its metadata (o2c_workflow names
    # the process that booked it), the tax it charges, and the billing account it lives in.
    created: date | None = None
    metadata: dict[str, str] = {}
    tax: Money | None = None
    billing_account: str = ""
    # The card an open invoice is charged to: the card's fingerprint (one card number, however
    # many payment methods carry it), else the payment method id; "" when billing names none.
    # The card networks' retry limits count attempts per card across invoices.
    payment_method: str = ""
    # Credits (optional): the pre-tax total credit notes have credited on it already.
    credited: Money | None = None
    # Cash (optional): when payment is due (billing's `due_date`; none for charge_automatically).
    due_date: date | None = None


class PaymentOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"


class PaymentAttempt(Model):
    """One try to collect an invoice with the customer's payment method."""

    invoice_id: str
    outcome: PaymentOutcome
    decline_code: str = ""
    message: str = ""
    amount_paid: Money
    amount_remaining: Money


class CollectionCase(Model):
    """The AR collection case in the ERP that follows one unpaid invoice."""

    external_id: str
    account_id: str
    invoice_id: str
    subsidiary: str = "1"
    amount: Money
    stage: str
    status: str = "open"
    internal_id: str = ""


class CrmTask(Model):
    account_id: str
    owner: str
    subject: str
    body: str = ""
    due_on: date | None = None  # a task with a deadline (a dispute's evidence due date)
    priority: str = ""  # "High" when escalated


class PaymentEventKind(StrEnum):
    PAYMENT_FAILED = "payment_failed"
    PAID = "paid"
    BALANCE_CHANGED = "balance_changed"
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_CLOSED = "dispute_closed"
    PAYMENT_METHOD_UPDATED = "payment_method_updated"


class PaymentEvent(Model):
    """An inbound payment-platform event, in o2c's words (the webhook ingress maps to it)."""

    event_id: str
    kind: PaymentEventKind
    occurred_at: datetime
    invoice_id: str = ""
    account_id: str = ""
    subscription_id: str = ""
    amount_due: Money | None = None
    amount_remaining: Money | None = None
    decline_code: str = ""
    dispute_id: str = ""
    dispute_won: bool | None = None


class JournalEntryRef(Model):
    """Where the ERP keeps a posted entry."""

    external_id: str
    internal_id: str
    location: str = ""


class Entitlement(Model):
    account_id: str
    product: str
    seats: int
    status: str = "active"


class Notification(Model):
    recipient: str
    template: str
    subject: str
    body: str
    account_id: str = ""


class ApproverRole(StrEnum):
    FINANCE = "finance"
    CONTROLLER = "controller"


class Approver(Model):
    name: str
    role: ApproverRole


class ApprovalDecision(Model):
    approver: str
    role: ApproverRole
    approved: bool
    comment: str = ""
    decided_at: datetime | None = None


class ApprovalRequest(Model):
    required_role: ApproverRole
    reasons: list[str]
    requested_by: str
    amount: Money
    requested_at: datetime | None = None


class SubscriptionTerm(Model):
    """A new subscription term to create in billing (a renewal's next term)."""

    account_id: str
    contract_id: str
    currency: str
    lines: list[SubscriptionLine]
    term_start: date
    term_end: date
    legal_entity: str = DEFAULT_LEGAL_ENTITY.code


class RevenueScheduleLine(Model):
    period: str  # YYYY-MM
    start: date
    end: date  # exclusive
    days: int
    amount: Money


class RevenueSchedule(Model):
    """How an obligation's price is recognised over its service period."""

    schedule_id: str
    contract_id: str
    account_id: str
    legal_entity: str
    obligation: str
    method: str  # "ratable" or "point_in_time"
    total: Money
    start: date
    end: date
    lines: list[RevenueScheduleLine]
    # Optional, added for ASC 606 allocation, modifications and reports (canonical/asc606.py):
    booked_on: date | None = None  # when the consideration was booked (the waterfall's row); else start
    ssp: Money | None = None  # the obligation's standalone selling price over [start, end)
    supersedes: str = ""  # the schedule a prospective modification terminated to create this one


# -- listings: what reconciliation reads from each system, a page at a time ----------------
#
# A page carries the cursor that fetches the next one; an empty cursor means the listing is
# complete. Cursors are opaque strings (Stripe's last object id, AvaTax's skip count,
# NetSuite's last internal id), so an activity can heartbeat its position and resume there.


class InvoicePage(Model):
    items: list[Invoice]
    next_cursor: str = ""


class TaxDocumentPage(Model):
    items: list[TaxDocument]
    next_cursor: str = ""


class ContractRevenue(Model):
    """What o2c's computed schedules recognise for one contract in one period."""

    contract_id: str
    amount: Money


class ContractRevenuePage(Model):
    items: list[ContractRevenue]
    next_cursor: str = ""
