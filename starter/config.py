"""Business configuration a deployment sets through the environment: approval and dunning policy."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from canonical.approval import ApprovalPolicy
from canonical.dunning import DunningPolicies
from canonical.models import DEFAULT_ENTITIES, Approver, ApproverRole, LegalEntity
from canonical.reconciliation import ReconciliationPolicy, Tolerance
from canonical.renewal import RenewalPolicy


def approval_policy() -> ApprovalPolicy:
    """O2C_FINANCE_THRESHOLD and O2C_CONTROLLER_THRESHOLD (annual value change, major units),
    O2C_MAX_DISCOUNT_PERCENT, and O2C_APPROVERS as `name:role,name:role`."""
    policy = ApprovalPolicy()
    updates: dict[str, object] = {}
    for field, var in (
        ("finance_threshold", "O2C_FINANCE_THRESHOLD"),
        ("controller_threshold", "O2C_CONTROLLER_THRESHOLD"),
        ("max_discount_percent", "O2C_MAX_DISCOUNT_PERCENT"),
    ):
        if os.environ.get(var):
            updates[field] = Decimal(os.environ[var])
    if os.environ.get("O2C_APPROVERS"):
        approvers = []
        for entry in os.environ["O2C_APPROVERS"].split(","):
            name, _, role = entry.strip().partition(":")
            approvers.append(Approver(name=name, role=ApproverRole(role)))
        updates["approvers"] = approvers
    return policy.model_copy(update=updates) if updates else policy


def dunning_policies(default_day: timedelta | None = None) -> DunningPolicies:
    """O2C_DUNNING_POLICIES_FILE: a JSON DunningPolicies (default and per-segment overrides);
    O2C_DUNNING_DAY_SECONDS: the length of a dunning day for every policy (a whole calendar
    in minutes on a test stack). `default_day` applies when the variable is not set."""
    path = os.environ.get("O2C_DUNNING_POLICIES_FILE")
    policies = DunningPolicies.model_validate_json(Path(path).read_text()) if path else DunningPolicies()
    seconds = os.environ.get("O2C_DUNNING_DAY_SECONDS")
    day = timedelta(seconds=float(seconds)) if seconds else default_day
    if day is None:
        return policies
    return policies.model_copy(
        update={
            "default": policies.default.model_copy(update={"day": day}),
            "segments": {k: v.model_copy(update={"day": day}) for k, v in policies.segments.items()},
        }
    )


def renewal_policy() -> RenewalPolicy:
    """O2C_RENEWAL_UPLIFT_CAP (percent) and O2C_RENEWAL_DAY_SECONDS (how long a calendar day
    lasts while a renewal waits: 86400 in production; a test stack brings the start day
    forward by shortening it)."""
    policy = RenewalPolicy()
    updates: dict[str, object] = {}
    if os.environ.get("O2C_RENEWAL_UPLIFT_CAP"):
        updates["uplift_cap_percent"] = Decimal(os.environ["O2C_RENEWAL_UPLIFT_CAP"])
    if os.environ.get("O2C_RENEWAL_DAY_SECONDS"):
        updates["day"] = timedelta(seconds=float(os.environ["O2C_RENEWAL_DAY_SECONDS"]))
    return policy.model_copy(update=updates) if updates else policy


def legal_entities() -> list[LegalEntity]:
    """O2C_LEGAL_ENTITIES_FILE: a JSON list of legal entities (code, company code,
    functional currency, ERP subsidiary, Stripe billing account). The default is one US
    entity booking in USD on the platform's own Stripe account and NetSuite subsidiary 1."""
    path = os.environ.get("O2C_LEGAL_ENTITIES_FILE")
    if not path:
        return list(DEFAULT_ENTITIES)
    return [LegalEntity.model_validate(e) for e in json.loads(Path(path).read_text())]


def reconciliation_policy() -> ReconciliationPolicy:
    """O2C_RECONCILIATION_FILE: a JSON ReconciliationPolicy (tolerances, healing limit, batch
    size, parallel batches, days in the exception queue). O2C_RECON_TOLERANCE_MINOR sets every
    tolerance (minor units, 0 by default) and O2C_RECON_HEAL_LIMIT the amount up to which a
    missing entry is posted without approval (major units, 1000 by default)."""
    path = os.environ.get("O2C_RECONCILIATION_FILE")
    policy = ReconciliationPolicy.model_validate_json(Path(path).read_text()) if path else ReconciliationPolicy()
    updates: dict[str, object] = {}
    if os.environ.get("O2C_RECON_TOLERANCE_MINOR"):
        minor = int(os.environ["O2C_RECON_TOLERANCE_MINOR"])
        updates["tolerance"] = Tolerance(amount_minor=minor, tax_minor=minor, revenue_minor=minor)
    if os.environ.get("O2C_RECON_HEAL_LIMIT"):
        updates["heal_limit"] = Decimal(os.environ["O2C_RECON_HEAL_LIMIT"])
    return ReconciliationPolicy.model_validate({**policy.model_dump(), **updates}) if updates else policy
