"""Disputes and chargebacks: the policy and the entries each turn of a dispute books.

Funds withdrawn: Dr disputed funds receivable / Cr cash, and the fee Dr dispute fees / Cr
cash. Won (funds reinstated): Dr cash / Cr disputed funds. Lost: Dr chargeback loss (or
revenue, when the policy treats a lost dispute as a reversal of the sale) / Cr disputed funds;
or, when the policy says so and a controller approves, the balance written off (Dr bad debt
expense, or the allowance for doubtful accounts / Cr disputed funds).
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum

from canonical.credits import Dispute, DisputeStatus
from canonical.journal import ChartOfAccounts, JournalEntry, JournalLine
from canonical.models import Model

CREATED = "charge.dispute.created"
FUNDS_WITHDRAWN = "charge.dispute.funds_withdrawn"
FUNDS_REINSTATED = "charge.dispute.funds_reinstated"
CLOSED = "charge.dispute.closed"
UPDATED = "charge.dispute.updated"
DISPUTE_EVENTS = (CREATED, FUNDS_WITHDRAWN, FUNDS_REINSTATED, CLOSED, UPDATED)


class LostDisputeBooking(StrEnum):
    CHARGEBACK_LOSS = "chargeback_loss"
    REVENUE_REVERSAL = "revenue_reversal"


class WriteOffMethod(StrEnum):
    DIRECT = "direct"  # Dr bad debt expense
    ALLOWANCE = "allowance"  # Dr allowance for doubtful accounts


class DisputePolicy(Model):
    lost_booking: LostDisputeBooking = LostDisputeBooking.CHARGEBACK_LOSS
    # A lost dispute's balance written off (after a controller approves) instead of booked
    # as a chargeback and handed back to the dunning.
    write_off_lost: bool = False
    write_off_method: WriteOffMethod = WriteOffMethod.DIRECT
    escalate_before: timedelta = timedelta(days=1)  # before the evidence is due


def withdraws_funds(dispute: Dispute) -> bool:
    """A card dispute takes the funds when it opens; an inquiry (warning_*) does not, until
    the network turns it into a dispute (Stripe then sends funds_withdrawn)."""
    return not dispute.status.value.startswith("warning_")


def _entry(
    external_id: str, dispute: Dispute, subsidiary: str, posting_date: date, memo: str, lines: list[JournalLine]
) -> JournalEntry:
    return JournalEntry(
        external_id=external_id,
        subsidiary=subsidiary,
        currency=dispute.amount.currency,
        posting_date=posting_date,
        memo=f"{memo}: dispute {dispute.dispute_id} on charge {dispute.charge_id}",
        lines=lines,
        invoice_id=dispute.invoice_id,
    )


def withdrawal_entry(
    dispute: Dispute, *, external_id: str, subsidiary: str, posting_date: date, chart: ChartOfAccounts
) -> JournalEntry:
    lines = [
        JournalLine(account=chart.disputed_funds, debit=dispute.amount, memo="Disputed funds receivable"),
        JournalLine(account=chart.cash, credit=dispute.amount, memo="Funds withdrawn by the card network"),
    ]
    fee = dispute.fee
    if fee is not None and fee.amount > 0:
        lines += [
            JournalLine(account=chart.dispute_fees, debit=fee, memo="Dispute fee"),
            JournalLine(account=chart.cash, credit=fee, memo="Dispute fee withdrawn"),
        ]
    return _entry(external_id, dispute, subsidiary, posting_date, "Funds withdrawn", lines)


def won_entry(
    dispute: Dispute, *, external_id: str, subsidiary: str, posting_date: date, chart: ChartOfAccounts
) -> JournalEntry:
    lines = [
        JournalLine(account=chart.cash, debit=dispute.amount, memo="Funds reinstated"),
        JournalLine(account=chart.disputed_funds, credit=dispute.amount, memo="Disputed funds receivable"),
    ]
    return _entry(external_id, dispute, subsidiary, posting_date, "Dispute won", lines)


def lost_entry(
    dispute: Dispute,
    *,
    external_id: str,
    subsidiary: str,
    posting_date: date,
    chart: ChartOfAccounts,
    policy: DisputePolicy,
    written_off: bool = False,
) -> JournalEntry:
    if written_off:
        account = (
            chart.bad_debt_expense if policy.write_off_method == WriteOffMethod.DIRECT else chart.allowance_doubtful
        )
        what = "Written off"
    elif policy.lost_booking == LostDisputeBooking.REVENUE_REVERSAL:
        account, what = chart.revenue, "Revenue reversed"
    else:
        account, what = chart.chargeback_loss, "Chargeback loss"
    lines = [
        JournalLine(account=account, debit=dispute.amount, memo=what),
        JournalLine(account=chart.disputed_funds, credit=dispute.amount, memo="Disputed funds receivable"),
    ]
    return _entry(external_id, dispute, subsidiary, posting_date, "Dispute lost", lines)


def won(dispute: Dispute) -> bool:
    return dispute.status in (DisputeStatus.WON, DisputeStatus.WARNING_CLOSED)
