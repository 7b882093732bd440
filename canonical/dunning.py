"""Dunning policy as data: when to retry, when to write, when to escalate.

Days count from the first failed payment (day 0). Every default is configuration: an
operator overrides it per customer segment, and the length of a dunning "day" itself is
configurable so a whole calendar can run in minutes on a test stack.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import field_validator

from canonical.approval import as_per_currency
from canonical.journal import WriteOffPolicy
from canonical.models import ApproverRole, Model
from canonical.money import Money
from canonical.policy_amounts import PerCurrency, per_currency

# Declines that retrying the same card cannot cure (Visa category 1 and their kin): wait
# for the customer to supply a new payment method.
HARD_DECLINES = frozenset(
    {
        "lost_card",
        "stolen_card",
        "pickup_card",
        "expired_card",
        "fraudulent",
        "restricted_card",
        "invalid_account",
        "card_not_supported",
        "incorrect_number",
        "revocation_of_authorization",
        "stop_payment_order",
        "new_account_information_available",
        # Added with o2c-cash: the issuer refuses this kind of transaction on the card, or the
        # cardholder revoked every authorisation given to the merchant. Runs that started
        # before read the set above without them (HARD_DECLINES_BEFORE_CASH).
        "transaction_not_allowed",
        "revocation_of_all_authorizations",
    }
)
HARD_DECLINES_BEFORE_CASH = HARD_DECLINES - {"transaction_not_allowed", "revocation_of_all_authorizations"}

# Visa's limit on reattempts of one card in 30 days; Mastercard's (35 in 30 days, 10 in 24
# hours) is looser over 30 days, so 15 holds for both.
CARD_NETWORK_LIMIT_PER_30_DAYS = 15
CARD_WINDOW = timedelta(days=30)


def is_hard_decline(decline_code: str, *, since_cash: bool = True) -> bool:
    return decline_code in (HARD_DECLINES if since_cash else HARD_DECLINES_BEFORE_CASH)


# The CRM account flag that tells sales and support the customer is being dunned.
DUNNING_FLAG = "dunning"


class DunningAction(StrEnum):
    """What an entry of the dunning calendar does on its day."""

    NOTICE = "notice"
    RETRY = "retry"
    RESTRICT = "restrict"
    CANCEL = "cancel"


class NoticeWording(Model):
    subject: str
    body: str


# Escalating wording, keyed by the notice day; {invoice} and {balance} are filled in.
DEFAULT_NOTICES: dict[int, NoticeWording] = {
    0: NoticeWording(
        subject="Your payment for invoice {invoice} didn't go through",
        body="We couldn't collect {balance}. We'll try again shortly; you can also update "
        "your payment method at any time.",
    ),
    3: NoticeWording(
        subject="Reminder: invoice {invoice} is unpaid",
        body="{balance} is still due. Please check your payment method so service continues without interruption.",
    ),
    7: NoticeWording(
        subject="Action needed: invoice {invoice} is a week overdue",
        body="{balance} remains unpaid. Without payment, your service will be restricted.",
    ),
    14: NoticeWording(
        subject="Final notice: invoice {invoice}",
        body="{balance} is two weeks overdue. Without payment, your subscription will be "
        "restricted and then cancelled.",
    ),
}

THANKS = NoticeWording(
    subject="Thank you: invoice {invoice} is paid", body="We received your payment. Your account is in good standing."
)


# About 100,000 dollars of annual recurring revenue, at rounded rates.
STRATEGIC_ARR_THRESHOLDS = per_currency(USD=100_000, EUR=90_000, GBP=80_000, CAD=135_000, AUD=150_000, JPY=15_000_000)


class DunningPolicy(Model):
    retry_days: list[int] = [1, 3, 5, 7, 14]
    notice_days: list[int] = [0, 3, 7, 14]
    notices: dict[int, NoticeWording] = DEFAULT_NOTICES
    restrict_day: int = 21
    cancel_day: int = 30
    # Card networks: never more than this many attempts per card in 30 days (Visa: 15),
    # counted over every invoice charged to the card; a policy may ask for fewer, never more.
    max_attempts_per_30_days: int = CARD_NETWORK_LIMIT_PER_30_DAYS
    # The bare number runs before o2c-cash read in any currency; new runs read the table.
    strategic_arr_threshold: Decimal = Decimal(100_000)
    strategic_arr_thresholds: PerCurrency = STRATEGIC_ARR_THRESHOLDS
    restrict_role: ApproverRole = ApproverRole.FINANCE
    strategic_restrict_role: ApproverRole = ApproverRole.CONTROLLER
    write_off_role: ApproverRole = ApproverRole.CONTROLLER
    write_off: WriteOffPolicy = WriteOffPolicy()
    day: timedelta = timedelta(days=1)

    @field_validator("max_attempts_per_30_days")
    @classmethod
    def _within_the_networks(cls, value: int) -> int:
        if value > CARD_NETWORK_LIMIT_PER_30_DAYS:
            raise ValueError(
                f"max_attempts_per_30_days is {value}: the card networks allow at most "
                f"{CARD_NETWORK_LIMIT_PER_30_DAYS} attempts per card in 30 days (Visa)"
            )
        if value < 1:
            raise ValueError(f"max_attempts_per_30_days is {value}: at least one attempt")
        return value

    @field_validator("strategic_arr_thresholds", mode="before")
    @classmethod
    def _table(cls, value: object) -> object:
        return as_per_currency(value)

    def is_strategic(self, arr: Money | None, *, per_currency: bool = True) -> bool:
        """An account at or above the ARR threshold in its currency is strategic. Raises
        UncoveredCurrency when the policy states no threshold in the ARR's currency."""
        if arr is None:
            return False
        if not per_currency:
            return arr.amount >= self.strategic_arr_threshold
        return arr >= self.strategic_arr_thresholds.of(arr.currency, what="the strategic ARR threshold")

    def calendar(self) -> list[tuple[int, DunningAction]]:
        """Every scheduled action in order: (day, action)."""
        entries = [(d, DunningAction.NOTICE) for d in self.notice_days] + [
            (d, DunningAction.RETRY) for d in self.retry_days
        ]
        entries += [(self.restrict_day, DunningAction.RESTRICT), (self.cancel_day, DunningAction.CANCEL)]
        order = {DunningAction.RETRY: 0, DunningAction.NOTICE: 1, DunningAction.RESTRICT: 2, DunningAction.CANCEL: 3}
        return sorted(set(entries), key=lambda e: (e[0], order[e[1]]))

    def case_stage(self, day: int) -> str:
        """The stage of the ERP collection case on a given day."""
        if day >= self.cancel_day:
            return "write-off"
        if day >= self.restrict_day:
            return "restricted"
        if day >= 14:
            return "final notice"
        if day >= 7:
            return "escalated"
        return "reminder"


class DunningPolicies(Model):
    """The default policy and per-segment overrides (e.g. 'enterprise', 'smb')."""

    default: DunningPolicy = DunningPolicy()
    segments: dict[str, DunningPolicy] = {}

    def for_segment(self, segment: str) -> DunningPolicy:
        return self.segments.get(segment, self.default)


def within_network_limit(attempts: list[datetime], now: datetime, limit: int) -> bool:
    """True when one more attempt now keeps the card within `limit` attempts in 30 days."""
    return sum(1 for at in attempts if now - at < CARD_WINDOW) < limit
