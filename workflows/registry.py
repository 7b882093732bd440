"""Every workflow the worker runs."""

from workflows.amendment import AmendmentWorkflow
from workflows.cash import CashApplicationWorkflow
from workflows.credit import CreditWorkflow
from workflows.dispute import DisputeWorkflow
from workflows.dunning import DunningWorkflow
from workflows.reconciliation import ReconciliationBatchWorkflow, ReconciliationWorkflow
from workflows.refund import RefundWorkflow
from workflows.renewal import RenewalWorkflow
from workflows.renewal_window import RenewalWindowWorkflow
from workflows.revenue import RevenuePostingWorkflow
from workflows.revenue_close import RevenueCloseWorkflow
from workflows.usage import UsageReleaseWorkflow
from workflows.usage_close import UsagePeriodCloseWorkflow

ALL_WORKFLOWS = [
    AmendmentWorkflow,
    DunningWorkflow,
    RenewalWorkflow,
    RenewalWindowWorkflow,
    ReconciliationWorkflow,
    ReconciliationBatchWorkflow,
    UsageReleaseWorkflow,
    UsagePeriodCloseWorkflow,
    CreditWorkflow,
    DisputeWorkflow,
    RefundWorkflow,
    CashApplicationWorkflow,
    RevenuePostingWorkflow,
    RevenueCloseWorkflow,
]
