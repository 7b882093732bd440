"""Every workflow the worker runs."""

from o2c.workflows.amendment import AmendmentWorkflow
from o2c.workflows.dunning import DunningWorkflow
from o2c.workflows.renewal import RenewalWorkflow

ALL_WORKFLOWS = [AmendmentWorkflow, DunningWorkflow, RenewalWorkflow]
