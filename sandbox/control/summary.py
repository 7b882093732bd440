"""`GET /_sandbox/summary`: how many documents of each type every system holds, by
status, and the faults in force."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sandbox.control.faults import Faults
from sandbox.core import SYSTEMS
from sandbox.netsuite.collection_cases import CASE_TYPE
from sandbox.store import Store


def summary(store: Store, faults: Faults) -> dict[str, Any]:
    out: dict[str, Any] = {system: {} for system in SYSTEMS}
    with store.tx() as tx:
        rows = tx.types()
    for system, type_, data in rows:
        if system == "sandbox":
            continue  # the sandbox's own clock
        if system == "stripe" and type_ in ("price", "invoice_number", "scheduled_finalization", "meter_event_session"):
            continue
        if system == "netsuite" and type_ in ("externalId", "collectionCaseHistory"):
            continue
        if system == "salesforce" and type_ == "taskKey":
            continue
        if system == "sap" and type_ in ("csrf", "numberRange"):
            continue
        entry = out.setdefault(system, {}).setdefault(type_, {"total": 0, "by_status": Counter()})
        entry["total"] += 1
        status = data.get("status")
        if system == "avatax" and type_ == "transaction":
            status = f"{data.get('type')}/{data.get('status')}"
        if system in ("netsuite", "sap") and type_ in ("accountingPeriod", "postingPeriod"):
            status = "closed" if data.get("closed") else "open"
        if system == "netsuite" and type_ == CASE_TYPE:
            status = data.get("custrecord_o2c_status")
        if system == "stripe" and type_ == "event":
            status = data.get("type")  # events counted by type
        if system == "stripe" and type_ == "webhook_delivery":
            status = "succeeded" if data.get("succeeded") else "failed"
        if system == "entitlements" and type_ == "restriction":
            status = "restricted" if data.get("restricted") else "unrestricted"
        if system == "salesforce" and type_ == "Account":
            status = "flagged" if data.get("O2c_Dunning_Flag__c") else "unflagged"
        if status is not None:
            entry["by_status"][str(status)] += 1
    for types in out.values():
        for entry in types.values():
            entry["by_status"] = dict(entry["by_status"])
    out["faults"] = faults.list()
    return out
