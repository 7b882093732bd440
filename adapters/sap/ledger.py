"""Posted documents read back through API_OPLACCTGDOCITEMCUBE_SRV (A_OperationalAcctgDocItemCube,
OData V2, read-only): items grouped into o2c's journal entries."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.errors import IntegrationBug
from adapters.sap.errors import SYSTEM
from adapters.sap.wire import TAGS, document_key, document_reference
from canonical.journal import JournalEntry, JournalLine
from canonical.money import Money

SERVICE = "/sap/opu/odata/sap/API_OPLACCTGDOCITEMCUBE_SRV/A_OperationalAcctgDocItemCube"
ORDER = "AccountingDocument,AccountingDocumentItem"
_EDM_DATE = re.compile(r"^/Date\((-?\d+)(?:[+-]\d+)?\)/$")


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def datetime_literal(day: date) -> str:
    return f"datetime'{day.isoformat()}T00:00:00'"


def edm_date(value: Any) -> date:
    """SAP's Edm.DateTime in OData V2 JSON: /Date(<ms since the epoch>)/, UTC midnight."""
    match = _EDM_DATE.match(str(value or ""))
    if not match:
        raise ValueError(f"not an Edm.DateTime: {value!r}")
    return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC).date()


def document_of(item: dict[str, Any]) -> str:
    return document_key(str(item["AccountingDocument"]), str(item["CompanyCode"]), str(item["FiscalYear"]))


def group(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Items in document order, grouped by document (they arrive ordered)."""
    out: list[list[dict[str, Any]]] = []
    for item in items:
        if out and document_of(out[-1][0]) == document_of(item):
            out[-1].append(item)
        else:
            out.append([item])
    return out


def _tags(items: list[dict[str, Any]]) -> tuple[dict[str, str], set[int]]:
    """The keys the first items' texts carry (see wire.py), and which items carry them."""
    found: dict[str, str] = {}
    tagged: set[int] = set()
    position = 0
    for tag in TAGS:
        if position >= len(items):
            break
        text = str(items[position].get("DocumentItemText") or "")
        if text.startswith(tag):
            found[tag] = text[len(tag) :]
            tagged.add(position)
            position += 1
    return found, tagged


class EntryReader:
    """Builds canonical entries from a document's items. `account_of` maps an SAP G/L
    account back to o2c's code; `customer_of` an SAP customer number to the billing
    customer id."""

    def __init__(
        self,
        account_of: Callable[[str], str],
        customer_of: Callable[[str], Awaitable[str]],
        logical_system: str,
    ):
        self._account = account_of
        self.customer_of = customer_of
        self.logical_system = logical_system

    async def entry(self, items: list[dict[str, Any]], *, external_id: str = "") -> JournalEntry:
        first = items[0]
        key = document_of(first)
        try:
            ours = first.get("ReferenceDocumentLogicalSystem") == self.logical_system
            tags, tagged = _tags(items) if ours else ({}, set())
            currency = str(first.get("TransactionCurrency") or "")
            lines = []
            customer_number = ""
            for index, item in enumerate(items):
                amount = Decimal(str(item.get("AmountInTransactionCurrency")))
                if amount == 0:
                    continue
                money = Money.of(abs(amount), currency)
                debit = item.get("DebitCreditCode") == "S"
                customer_number = customer_number or str(item.get("Customer") or "")
                lines.append(
                    JournalLine(
                        account=self._account(str(item.get("GLAccount") or "")),
                        debit=money if debit else None,
                        credit=None if debit else money,
                        memo="" if index in tagged else str(item.get("DocumentItemText") or ""),
                    )
                )
            reversal = bool(first.get("IsReversal"))
            # A reversal's items are copies of the original's, texts included: their
            # external-id tag names the entry it reverses.
            own_id = tags.get("E:", "")
            reverses = own_id if reversal else ""
            reference = str(first.get("DocumentReferenceID") or "")
            if reversal:
                own_id = external_id or self._reversal_id(reverses, reference)
            elif external_id:
                own_id = external_id
            return JournalEntry(
                external_id=own_id or f"sap:{key}",
                subsidiary=str(first["CompanyCode"]),
                currency=currency,
                posting_date=edm_date(first.get("PostingDate")),
                memo=str(first.get("AccountingDocumentHeaderText") or ""),
                lines=lines,
                reverses=reverses,
                invoice_id=tags.get("I:", ""),
                contract_id=tags.get("C:", ""),
                internal_id=key,
                customer=await self.customer_of(customer_number) if customer_number else "",
            )
        except (KeyError, ValueError, ArithmeticError, InvalidOperation) as exc:
            raise IntegrationBug(SYSTEM, f"SAP document {key} read back is not a valid journal entry: {exc}") from exc

    @staticmethod
    def _reversal_id(reverses: str, reference: str) -> str:
        """A reversal's own external id has no field in SAP. o2c names reversals
        `<original>-reversal` (JournalEntry.reversal's callers); the document's reference,
        the hash of its id, confirms the name, else the document is named by the reference."""
        candidate = f"{reverses}-reversal"
        return candidate if reverses and document_reference(candidate) == reference else f"sap:{reference}"
