"""ASC 606 in the steps software can own, pure and exact (Money in minor units,
largest-remainder splits, no floats, no clocks). Read it in this order:

    obligations     steps 1-3: the contract, its performance obligations, its price
    allocation      step 4: the price allocated by relative standalone selling price
    schedules       step 5: ratable and point-in-time schedules, and what they recognised by a date
    modifications   ASC 606-10-25-12/13: separate contract, prospective, cumulative catch-up
    renewals        a renewal's term as a contract of its own
    amendments      an amendment as a modification of the contract
    reports         the waterfall and the deferred revenue roll-forward

    schedules = recognise(contract)                         # steps 4 and 5
    schedules = modify(schedules, modification, as_of=...)  # ASC 606-10-25-12/13
    waterfall(schedules)                                    # bookings x recognition months
    deferred_revenue_roll_forward(schedules, billings, first="2026-01", last="2026-03")
"""

from canonical.revenue.allocation import allocate
from canonical.revenue.amendments import ScheduleChange, amendment_schedules, contract_value_change
from canonical.revenue.modifications import ContractModification, ModificationTreatment, modify, treatment
from canonical.revenue.obligations import ObligationKind, PerformanceObligation, RevenueContract
from canonical.revenue.renewals import renewal_schedules, term_obligations
from canonical.revenue.reports import (
    Billing,
    RollForward,
    Waterfall,
    WaterfallRow,
    deferred_revenue_roll_forward,
    waterfall,
)
from canonical.revenue.schedules import (
    calendar_months,
    point_in_time_schedule,
    prorated,
    ratable_schedule,
    recognise,
    recognised_before,
    schedule_for,
    split_line,
    truncated,
)

__all__ = [
    "Billing",
    "ContractModification",
    "ModificationTreatment",
    "ObligationKind",
    "PerformanceObligation",
    "RevenueContract",
    "RollForward",
    "ScheduleChange",
    "Waterfall",
    "WaterfallRow",
    "allocate",
    "amendment_schedules",
    "calendar_months",
    "contract_value_change",
    "deferred_revenue_roll_forward",
    "modify",
    "point_in_time_schedule",
    "prorated",
    "ratable_schedule",
    "recognise",
    "recognised_before",
    "renewal_schedules",
    "schedule_for",
    "split_line",
    "term_obligations",
    "treatment",
    "truncated",
    "waterfall",
]
