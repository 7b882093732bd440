"""Every workflow the worker runs."""

from o2c.workflows.amendment import AmendmentWorkflow
from o2c.workflows.dunning import DunningWorkflow

ALL_WORKFLOWS = [AmendmentWorkflow, DunningWorkflow]
