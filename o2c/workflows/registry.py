"""Every workflow the worker runs."""

from o2c.workflows.amendment import AmendmentWorkflow
from o2c.workflows.dunning import DunningWorkflow
from o2c.workflows.reconciliation import ReconciliationBatchWorkflow, ReconciliationWorkflow
from o2c.workflows.renewal import RenewalWorkflow
from o2c.workflows.renewal_window import RenewalWindowWorkflow

ALL_WORKFLOWS = [AmendmentWorkflow, DunningWorkflow, RenewalWorkflow, RenewalWindowWorkflow, ReconciliationWorkflow,
                 ReconciliationBatchWorkflow]
