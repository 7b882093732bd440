"""Every workflow the worker runs."""

from o2c.workflows.amendment import AmendmentWorkflow

ALL_WORKFLOWS = [AmendmentWorkflow]
