"""Avalara AvaTax as o2c's tax engine: wire format <-> canonical models, nothing else.

Idempotency is the document code: a SalesInvoice is created and committed under the
caller's `code`; a retry after a lost response meets `DocumentCodeConflict` and reads
the committed document back by code, so both attempts converge on one document.
"""

from __future__ import annotations

import base64
import platform
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from adapters.errors import AdapterError, Answer, BusinessError, ErrorKind, ErrorTable, IntegrationBug, Rule
from adapters.http import JSON_HEADERS, HttpAdapter, json_content, read_json, send
from canonical.credits import TaxReturnRequest
from canonical.models import Address, InvoiceLine, TaxDocument, TaxDocumentPage, TaxLine
from canonical.money import Money, total

SYSTEM = "avatax"
CLIENT_VERSION = "0.1.0"
# Avalara's tax code for SaaS (remote access to prewritten software) as we understand
# it; unverified, and configurable per call site later.
DEFAULT_TAX_CODE = "SW054000"

# Client faults a person fixes in the customer master (address / jurisdiction), by
# AvaTax ErrorCodeId name.
ADDRESS_ERRORS = {
    "MissingAddress",
    "InvalidAddress",
    "AddressConflictException",
    "AddressLocationNotFound",
    "InvalidPostalCode",
    "JurisdictionNotFoundError",
    "InvalidCountry",
    "InvalidCountryRegion",
    "AddressRangeError",
    "NotEnoughAddressesInfo",
    "InvalidAddressTextCase",
}


ERRORS = ErrorTable(
    SYSTEM,
    credentials=Rule(ErrorKind.BUG, "AvaTax rejected o2c's credentials: {message}"),
    refused=Rule(ErrorKind.BUSINESS, "AvaTax refused the tax calculation: {message}"),
    business={
        code: Rule(
            ErrorKind.BUSINESS,
            "{who} has no tax jurisdiction (region/postal code missing or invalid): {message}",
            fixable=True,
        )
        for code in ADDRESS_ERRORS
    },
)


def read_error(response: httpx.Response) -> Answer:
    """AvaTax's error answer: `{"error": {code, message, details: [{faultCode}]}}`; a
    `Server` fault is AvaTax's own word that repeating may succeed."""
    body = read_json(response)
    err = body.get("error", {}) if isinstance(body, dict) else {}
    details = err.get("details") or [{}]
    fault = (details[0] or {}).get("faultCode", "")
    return Answer(
        response.status_code,
        err.get("code") or "",
        err.get("message") or f"HTTP {response.status_code}",
        retry=True if fault == "Server" else None,
    )


def classify(response: httpx.Response, *, customer_code: str = "") -> AdapterError:
    who = f"The customer master of {customer_code}" if customer_code else "The customer's address"
    return ERRORS.classify(read_error(response), who=who)


def to_tax_document(doc: dict[str, Any]) -> TaxDocument:
    currency = doc.get("currencyCode") or "USD"

    def money(value: Any) -> Money:
        return Money.of(Decimal(str(value or 0)), currency, rounded=True)

    raw_date = str(doc.get("date") or "")[:10]  # "2026-10-01" or "2026-10-01T00:00:00"
    return TaxDocument(
        code=doc["code"],
        type=doc["type"],
        status=doc["status"],
        total_amount=money(doc.get("totalAmount")),
        total_tax=money(doc.get("totalTax")),
        lines=[
            TaxLine(
                number=str(line.get("lineNumber")), amount=money(line.get("lineAmount")), tax=money(line.get("tax"))
            )
            for line in doc.get("lines") or []
        ],
        document_date=date.fromisoformat(raw_date) if raw_date else None,
        customer_code=doc.get("customerCode") or "",
        company_code=doc.get("companyCode") or "",
    )


# The document types AvaTax records; a SalesOrder is an estimate it keeps no record of.
RECORDED_TYPES = ("SalesInvoice", "ReturnInvoice")


class AvaTaxTax(HttpAdapter):
    """TaxPort over AvaTax REST v2.

    Each legal entity files in its own AvaTax company (`LegalEntity.company_code`): a quote
    or a commit names the entity's company, or takes `company_code`, the deployment's own.
    A document looked up by its code alone (to void it, to return it) is searched in that
    company first, then in the other entities' (`companies`): o2c's document codes are
    billing invoice ids, unique across companies."""

    def __init__(
        self,
        base_url: str,
        account_id: str,
        license_key: str,
        company_code: str,
        timeout: float = 10.0,
        *,
        companies: Sequence[str] = (),
        client: httpx.AsyncClient | None = None,
    ):
        self.company_code = company_code
        self.companies = [company_code, *(c for c in dict.fromkeys(companies) if c != company_code)]
        token = base64.b64encode(f"{account_id}:{license_key}".encode()).decode()
        super().__init__(
            base_url,
            timeout,
            {
                "Authorization": f"Basic {token}",
                "X-Avalara-Client": f"o2c; {CLIENT_VERSION}; Python; httpx; {platform.node() or 'unknown'}",
                **JSON_HEADERS,
            },
            client,
        )

    def _doc_path(self, code: str, company: str = "") -> str:
        company = company or self.company_code
        return f"/api/v2/companies/{quote(company, safe='')}/transactions/{quote(code, safe='')}"

    def _create_body(
        self,
        *,
        type_: str,
        commit: bool,
        code: str,
        customer_code: str,
        document_date: date,
        currency: str,
        address: Address,
        lines: list[InvoiceLine],
        company_code: str = "",
    ) -> dict[str, Any]:
        return {
            "type": type_,
            "companyCode": company_code or self.company_code,
            "code": code,
            "customerCode": customer_code,
            "date": document_date.isoformat(),
            "currencyCode": currency,
            "commit": commit,
            "addresses": {
                "SingleLocation": {
                    "line1": address.line1,
                    "city": address.city,
                    "region": address.region,
                    "country": address.country,
                    "postalCode": address.postal_code,
                }
            },
            "lines": [
                {
                    "number": str(index + 1),
                    "quantity": 1,
                    "amount": line.amount.amount,
                    "taxCode": DEFAULT_TAX_CODE,
                    "itemCode": line.product,
                    "description": line.description,
                }
                for index, line in enumerate(lines)
            ],
        }

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await send(self._client, SYSTEM, "POST", path, content=json_content(body))

    async def _find(
        self, code: str, document_type: str = "SalesInvoice", company: str = ""
    ) -> tuple[dict[str, Any], str] | None:
        """The document with this code in `company`, or in the first company that holds it,
        and that company."""
        for candidate in [company] if company else self.companies:
            response = await send(
                self._client, SYSTEM, "GET", self._doc_path(code, candidate), params={"documentType": document_type}
            )
            if response.status_code == 404:
                continue
            if response.status_code >= 400:
                raise classify(response)
            return read_json(response), candidate
        return None

    async def _read(self, code: str, document_type: str = "SalesInvoice", company: str = "") -> dict[str, Any] | None:
        found = await self._find(code, document_type, company)
        return found[0] if found else None

    async def quote(
        self,
        *,
        code: str,
        customer_code: str,
        document_date: date,
        currency: str,
        address: Address,
        lines: list[InvoiceLine],
        company_code: str = "",
    ) -> TaxDocument:
        body = self._create_body(
            type_="SalesOrder",
            commit=False,
            code=code,
            customer_code=customer_code,
            document_date=document_date,
            currency=currency,
            address=address,
            lines=lines,
            company_code=company_code,
        )
        response = await self._post("/api/v2/transactions/create", body)
        if response.status_code >= 400:
            raise classify(response, customer_code=customer_code)
        return to_tax_document(read_json(response))

    async def commit(
        self,
        *,
        code: str,
        customer_code: str,
        document_date: date,
        currency: str,
        address: Address,
        lines: list[InvoiceLine],
        company_code: str = "",
    ) -> TaxDocument:
        body = self._create_body(
            type_="SalesInvoice",
            commit=True,
            code=code,
            customer_code=customer_code,
            document_date=document_date,
            currency=currency,
            address=address,
            lines=lines,
            company_code=company_code,
        )
        response = await self._post("/api/v2/transactions/create", body)
        if response.status_code < 400:
            return to_tax_document(read_json(response))
        if read_error(response).code == "DocumentCodeConflict":
            existing = await self._read(code, company=company_code or self.company_code)
            if existing is not None:
                return to_tax_document(existing)
        raise classify(response, customer_code=customer_code)

    async def return_invoice(self, request: TaxReturnRequest) -> TaxDocument:
        """A committed ReturnInvoice under `request.code`: dated the return date, taxed at
        the rates of the original's date (a TaxDate override), referencing the original by
        code, with negative line amounts and positive quantities (Avalara's handling of
        returns). AvaTax makes no association with the original and refuses neither a
        missing one nor a return larger than it, so this reads the original first and
        refuses both here, before anything is recorded. Returns already made against the
        same original are not counted: the credit's own validation weighs those. A retry
        meets DocumentCodeConflict and reads the committed return back."""
        currency = request.currency
        if not request.lines:
            raise BusinessError(SYSTEM, f"tax return {request.code} has no lines")
        for line in request.lines:
            if line.amount.currency != currency or line.amount.amount <= 0:
                raise BusinessError(
                    SYSTEM,
                    f"tax return {request.code}: line {line.number} must credit a positive {currency} amount, "
                    f"not {line.amount}",
                )
        returned = total((line.amount for line in request.lines), currency)
        found = await self._find(request.original_code)
        original, company = found if found else ({}, self.company_code)
        if not original or original.get("status") not in ("Committed", "Saved", "Posted"):
            raise BusinessError(
                SYSTEM,
                f"tax return {request.code}: the original invoice {request.original_code} has no recorded "
                "tax document in AvaTax to return",
            )
        original_amount = Money.of(Decimal(str(original.get("totalAmount") or 0)), currency, rounded=True)
        if returned > original_amount:
            raise BusinessError(
                SYSTEM,
                f"tax return {request.code} returns {returned}, more than the {original_amount} "
                f"invoice {request.original_code} taxed",
            )
        body = {
            "type": "ReturnInvoice",
            "companyCode": company,
            "code": request.code,
            "customerCode": request.customer_code,
            "date": request.return_date.isoformat(),
            "currencyCode": currency,
            "referenceCode": request.original_code,
            "commit": True,
            "taxOverride": {
                "type": "TaxDate",
                "taxDate": request.original_date.isoformat(),
                "reason": f"Return of invoice {request.original_code}",
            },
            "addresses": {
                "SingleLocation": {
                    "line1": request.address.line1,
                    "city": request.address.city,
                    "region": request.address.region,
                    "country": request.address.country,
                    "postalCode": request.address.postal_code,
                }
            },
            "lines": [
                {
                    "number": line.number,
                    "quantity": 1,
                    "amount": -line.amount.amount,
                    "taxCode": DEFAULT_TAX_CODE,
                    "itemCode": line.product,
                    "description": line.description,
                }
                for line in request.lines
            ],
        }
        response = await self._post("/api/v2/transactions/create", body)
        if response.status_code < 400:
            return to_tax_document(read_json(response))
        if read_error(response).code == "DocumentCodeConflict":
            existing = await self._read(request.code, "ReturnInvoice", company=company)
            if existing is not None:
                return to_tax_document(existing)
        raise classify(response, customer_code=request.customer_code)

    async def void(self, *, code: str, document_type: str = "SalesInvoice") -> TaxDocument | None:
        """Void (cancel) a committed document; voiding a cancelled one returns it, and a code
        AvaTax does not know returns None: there is nothing to undo. With several entity
        companies the document is found first, so it is voided where it is."""
        company = self.company_code
        if len(self.companies) > 1:
            found = await self._find(code, document_type)
            if found is None:
                return None
            company = found[1]
        params = {"documentType": document_type}
        response = await send(
            self._client,
            SYSTEM,
            "POST",
            self._doc_path(code, company) + "/void",
            params=params,
            content=json_content({"code": "DocVoided"}),
        )
        if response.status_code < 400:
            return to_tax_document(read_json(response))
        if read_error(response).code == "TransactionAlreadyCancelled":
            existing = await self._read(code, document_type, company=company)
            if existing is not None:
                return to_tax_document(existing)
        if response.status_code == 404:
            return None
        raise classify(response)

    async def void_return(self, *, code: str) -> TaxDocument | None:
        """The undo of return_invoice: void the ReturnInvoice with this code (None when
        AvaTax has none)."""
        return await self.void(code=code, document_type="ReturnInvoice")

    async def get_document(self, *, code: str) -> TaxDocument | None:
        document = await self._read(code)
        return None if document is None else to_tax_document(document)

    async def list_documents_page(
        self, *, company_code: str, date_from: date, date_to: date, cursor: str = "", limit: int = 1000
    ) -> TaxDocumentPage:
        """One page of ListTransactionsByCompany: the company's documents dated in
        [date_from, date_to), by date then id. The cursor is the `$skip` of the page
        (offset paging is all AvaTax offers); the next one comes from `@nextLink`."""
        if date_to <= date_from:
            return TaxDocumentPage(items=[])
        try:
            skip = int(cursor or 0)
        except ValueError:
            raise IntegrationBug(SYSTEM, f"not an AvaTax listing cursor: {cursor!r}") from None
        last_day = date_to - timedelta(days=1)  # `between` is inclusive
        response = await send(
            self._client,
            SYSTEM,
            "GET",
            f"/api/v2/companies/{quote(company_code, safe='')}/transactions",
            params={
                "$filter": f"date between '{date_from.isoformat()}' and '{last_day.isoformat()}'",
                "$top": max(1, min(limit, 1000)),
                "$skip": skip,
                "$orderBy": "date ASC, id ASC",
                "$include": "Lines",
            },
        )
        if response.status_code >= 400:
            raise classify(response)
        body = read_json(response)
        raw = body.get("value") or []
        # Only recorded documents are reconciled; AvaTax lists no quotes, but a listing
        # that did must not make them look like invoices.
        items = [to_tax_document(doc) for doc in raw if doc.get("type") in RECORDED_TYPES]
        next_link = body.get("@nextLink") or ""
        next_cursor = ""
        if next_link and raw:
            found = parse_qs(urlsplit(next_link).query).get("$skip")
            next_cursor = found[0] if found else str(skip + len(raw))
        return TaxDocumentPage(items=items, next_cursor=next_cursor)
