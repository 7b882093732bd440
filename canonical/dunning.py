"""Dunning policy as data: when to retry, when to write, when to escalate.

Days count from the first failed payment (day 0). Every default is configuration: an
operator overrides it per customer segment, and the length of a dunning "day" itself is
configurable so a whole calendar can run in minutes on a test stack.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from canonical.models import ApproverRole, Model

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
    }
)


def is_hard_decline(decline_code: str) -> bool:
    return decline_code in HARD_DECLINES


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


class DunningPolicy(Model):
    retry_days: list[int] = [1, 3, 5, 7, 14]
    notice_days: list[int] = [0, 3, 7, 14]
    notices: dict[int, NoticeWording] = DEFAULT_NOTICES
    restrict_day: int = 21
    cancel_day: int = 30
    # Card networks: never more than this many attempts per card in 30 days (Visa: 15).
    max_attempts_per_30_days: int = 15
    strategic_arr_threshold: Decimal = Decimal(100_000)
    restrict_role: ApproverRole = ApproverRole.FINANCE
    strategic_restrict_role: ApproverRole = ApproverRole.CONTROLLER
    write_off_role: ApproverRole = ApproverRole.CONTROLLER
    day: timedelta = timedelta(days=1)

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
    return sum(1 for at in attempts if now - at < timedelta(days=30)) < limit
