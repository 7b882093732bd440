"""Business configuration a deployment sets through the environment: approval policy."""

from __future__ import annotations

import os
from decimal import Decimal

from o2c.canonical.approval import ApprovalPolicy
from o2c.canonical.models import Approver, ApproverRole


def approval_policy() -> ApprovalPolicy:
    """O2C_FINANCE_THRESHOLD and O2C_CONTROLLER_THRESHOLD (annual value change, major units),
    O2C_MAX_DISCOUNT_PERCENT, and O2C_APPROVERS as `name:role,name:role`."""
    policy = ApprovalPolicy()
    updates: dict[str, object] = {}
    for field, var in (("finance_threshold", "O2C_FINANCE_THRESHOLD"),
                       ("controller_threshold", "O2C_CONTROLLER_THRESHOLD"),
                       ("max_discount_percent", "O2C_MAX_DISCOUNT_PERCENT")):
        if os.environ.get(var):
            updates[field] = Decimal(os.environ[var])
    if os.environ.get("O2C_APPROVERS"):
        approvers = []
        for entry in os.environ["O2C_APPROVERS"].split(","):
            name, _, role = entry.strip().partition(":")
            approvers.append(Approver(name=name, role=ApproverRole(role)))
        updates["approvers"] = approvers
    return policy.model_copy(update=updates) if updates else policy
