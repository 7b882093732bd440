"""The SAP side of a seeded period: the documents of a company code's entries written as the
journal entry service stores posted ones (sandbox/sap/journal_entries.py), so the OData item
cube reads them back exactly as it reads o2c's own postings.

An entry's lines are (account, amount, is_debit) in o2c's account codes; an account is SAP's
G/L account of the same digits zero-padded to 10, and the receivable line is a debtor item of
the invoice's customer (SAP posts no receivable to its reconciliation account directly). The
customers are business partners in the customer role, extended to the company code, with the
billing customer id as BusinessPartnerIDByExtSystem, numbered as the Business Partner API
numbers new ones. The keys o2c reads back ride where o2c puts them: DocumentReferenceID and
OriginalReferenceDocument carry the reference of the external id, the first items' texts
`E:<external id>`, `I:<invoice id>`, `C:<contract id>`, and ReferenceDocumentLogicalSystem
names o2c's logical system."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

from sandbox.sap import SYSTEM
from sandbox.sap.business_partners import PARTNER
from sandbox.sap.journal_entries import FIRST_DOCUMENT, ITEM
from sandbox.sap.master import RECEIVABLE_RECONCILIATION, company_code
from sandbox.store import Tx

Document = tuple[str, str, str, dict[str, Any]]
# Business partners are numbered from here, as the Business Partner API numbers them.
FIRST_PARTNER = 1000001
USER = "O2C_COMM"
TEXT_LIMIT = 50
EXTERNAL_ID_LIMIT = 20  # BusinessPartnerIDByExtSystem


def document_reference(external_id: str) -> str:
    """The reference o2c derives from an entry's external id (its DocumentReferenceID and
    OriginalReferenceDocument): "O2C" and 13 base32 characters of the id's SHA-256. Restated
    here, as the sandbox imports nothing of o2c."""
    digest = base64.b32encode(hashlib.sha256(external_id.encode()).digest()).decode()
    return "O2C" + digest[:13]


def gl_account(account: str) -> str:
    return account.zfill(10)


class SeedRefused(ValueError):
    """The company code cannot take the seeded period."""


class SapLedger:
    """Writes one seeded period's entries in one company code, numbering documents from the
    company code's number range, which `close` advances past them."""

    def __init__(self, tx: Tx, code: str, currency: str, logical_system: str, receivable: str):
        company = company_code(tx, code)
        if company is None:
            raise SeedRefused(f"SAP company code {code!r} does not exist: add it first (/_sandbox/sap/company_codes)")
        if company["Currency"] != currency:
            raise SeedRefused(f"SAP company code {code} books in {company['Currency']}, not {currency}")
        self.code = code
        self.currency = currency
        self.logical_system = logical_system
        self.receivable = receivable
        state = tx.get(SYSTEM, "numberRange", code) or {"next": FIRST_DOCUMENT}
        self.next_document = int(state["next"])
        self.first_partner = tx.count(SYSTEM, PARTNER) + FIRST_PARTNER
        self.customers: dict[str, str] = {}  # billing customer id -> SAP customer number

    def already_posted(self, tx: Tx, external_id: str) -> bool:
        return (
            tx.count_where(
                SYSTEM,
                ITEM,
                [("scope", "=", self.code), ("data.DocumentReferenceID", "=", document_reference(external_id))],
            )
            > 0
        )

    def partners(self, customers: list[tuple[str, str]]) -> Iterator[Document]:
        """A business partner for each (billing customer id, name), in the company code."""
        for offset, (external_id, name) in enumerate(customers):
            if len(external_id) > EXTERNAL_ID_LIMIT:
                raise SeedRefused(f"customer id {external_id} is longer than SAP's {EXTERNAL_ID_LIMIT} characters")
            number = str(self.first_partner + offset)
            self.customers[external_id] = number
            yield (
                SYSTEM,
                PARTNER,
                number,
                {
                    "BusinessPartner": number,
                    "Customer": number,
                    "BusinessPartnerCategory": "2",
                    "BusinessPartnerGrouping": "BP02",
                    "OrganizationBPName1": name[:40],
                    "OrganizationBPName2": "",
                    "SearchTerm1": external_id[:20].upper(),
                    "BusinessPartnerIDByExtSystem": external_id,
                    "roles": ["FLCU00", "FLCU01"],
                    "addresses": [],
                    "companies": [{"CompanyCode": self.code, "ReconciliationAccount": RECEIVABLE_RECONCILIATION}],
                },
            )

    def entry(
        self,
        external_id: str,
        day: date,
        memo: str,
        currency: str,
        lines: list[tuple[str, Decimal, bool]],
        *,
        customer: str = "",
        invoice: str = "",
        contract: str = "",
    ) -> Iterator[Document]:
        """The items of one posted document; zero lines left out, as SAP takes none."""
        document = f"{self.next_document:010d}"
        self.next_document += 1
        reference = document_reference(external_id)
        tags = [f"{tag}{value}" for tag, value in (("E:", external_id), ("I:", invoice), ("C:", contract)) if value]
        posted = [(account, amount, debit) for account, amount, debit in lines if amount != 0]
        if len(tags) > len(posted) or any(len(t) > TEXT_LIMIT for t in tags):
            raise SeedRefused(f"entry {external_id}: its keys do not fit SAP's item texts")
        for index, (account, amount, is_debit) in enumerate(posted, start=1):
            debtor = self.customers[customer] if customer and account == self.receivable else ""
            signed = amount if is_debit else -amount
            item = {
                "CompanyCode": self.code,
                "FiscalYear": str(day.year),
                "AccountingDocument": document,
                "AccountingDocumentItem": f"{index:03d}",
                "FiscalPeriod": f"{day.month:03d}",
                "PostingDate": day.isoformat(),
                "DocumentDate": day.isoformat(),
                "AccountingDocumentType": "SA",
                "DocumentReferenceID": reference,
                "OriginalReferenceDocument": reference,
                "ReferenceDocumentType": "BKPFF",
                "ReferenceDocumentLogicalSystem": self.logical_system,
                "AccountingDocumentHeaderText": memo[:25],
                "AccountingDocCreatedByUser": USER,
                "BusinessTransactionType": "RFBU",
                "FinancialAccountType": "D" if debtor else "S",
                "GLAccount": RECEIVABLE_RECONCILIATION if debtor else gl_account(account),
                "Customer": debtor,
                "Supplier": "",
                "DebitCreditCode": "S" if is_debit else "H",
                "AmountInTransactionCurrency": str(signed),
                "TransactionCurrency": currency,
                # The stand-in keeps no exchange rates: a foreign-currency document (a seeded
                # break) carries the same figures in the company code's currency.
                "AmountInCompanyCodeCurrency": str(signed),
                "CompanyCodeCurrency": self.currency,
                "DocumentItemText": tags[index - 1] if index <= len(tags) else "",
                "AssignmentReference": "",
                "IsCleared": False,
                "ClearingAccountingDocument": "",
                "ReverseDocument": "",
                "ReverseDocumentFiscalYear": "",
                "ReversalReason": "",
                "IsReversal": False,
                "IsReversed": False,
            }
            yield SYSTEM, ITEM, f"{self.code}:{day.year}:{document}:{index:03d}", item

    def close(self, tx: Tx) -> None:
        """Later postings number after the seeded documents."""
        tx.put(SYSTEM, "numberRange", self.code, {"next": self.next_document})
