"""The tenant's master data the postings are checked against: company codes with their
currency, the G/L accounts of the chart, closed posting periods. A fresh sandbox holds the
seeded ones below; the control plane adds company codes, G/L accounts and closes periods
(each a document, so a reset removes only what was added)."""

from __future__ import annotations

from typing import Any

from sandbox.sap import SYSTEM
from sandbox.store import Tx

# Company code -> (currency, name). 1010 is SAP's usual German demo company.
COMPANY_CODES: dict[str, tuple[str, str]] = {
    "1010": ("EUR", "Company Code 1010"),
    "1710": ("USD", "Company Code 1710"),
    "2910": ("GBP", "Company Code 2910"),
}
# The G/L accounts of the chart every company code uses: o2c's default account codes,
# zero-padded to SAP's 10 digits (the adapter's documented default mapping).
GL_ACCOUNTS = frozenset(
    f"{code:0>10}"
    for code in (
        "1000", "1010", "1200", "1250", "1290", "1300", "2150", "2160",
        "2190", "2200", "2400", "4000", "4100", "6150", "6900", "6950",
    )
)  # fmt: skip
# The reconciliation account of customers: posted through a debtor item only.
RECEIVABLE_RECONCILIATION = "0000001200"


def company_code(tx: Tx, code: str) -> dict[str, Any] | None:
    added = tx.get(SYSTEM, "companyCode", code)
    if added is not None:
        return added
    seeded = COMPANY_CODES.get(code)
    return None if seeded is None else {"CompanyCode": code, "Currency": seeded[0], "CompanyCodeName": seeded[1]}


def add_company_code(tx: Tx, code: str, currency: str, name: str = "") -> dict[str, Any]:
    record = {"CompanyCode": code, "Currency": currency, "CompanyCodeName": name or f"Company Code {code}"}
    tx.put(SYSTEM, "companyCode", code, record)
    return record


def gl_account_exists(tx: Tx, account: str) -> bool:
    return account in GL_ACCOUNTS or tx.get(SYSTEM, "glAccount", account) is not None


def add_gl_account(tx: Tx, account: str) -> dict[str, Any]:
    record = {"GLAccount": account}
    tx.put(SYSTEM, "glAccount", account, record)
    return record


def period_key(company: str, period: str) -> str:
    return f"{company}:{period}"


def set_period(tx: Tx, company: str, period: str, closed: bool) -> dict[str, Any]:
    record = {"CompanyCode": company, "period": period, "closed": closed}
    tx.put(SYSTEM, "postingPeriod", period_key(company, period), record)
    return record


def period_closed(tx: Tx, company: str, period: str) -> bool:
    state = tx.get(SYSTEM, "postingPeriod", period_key(company, period))
    return bool(state and state.get("closed"))
