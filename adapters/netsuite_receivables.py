"""NetSuite receivables (ReceivablesPort): customer payments, credit memos and customer
refunds applied to the A/R journal entries that book o2c's invoices.

- Every create is an upsert by external ID, `PUT /record/v1/{type}/eid:{externalId}`,
  with `?replace=apply`: the apply sublist sent is the whole of it, so posting the same
  payment twice leaves one payment with the same applications, and the open amounts of
  the documents are what they were after the first post. Without `replace`, NetSuite
  would merge the sent lines into the stored ones by doc.
- Apply lines are keyed by the document's internal id (`doc: {id}`); the document of a
  billing invoice is the journal entry whose INVOICE_FIELD names it and that debits the
  receivable account. NetSuite applies payments and credit memos to A/R journal entries
  as to invoices (the REST shape of such an apply line is unverified: it is the
  invoice's).
- Customers are referenced by external ID (the billing customer id),
  `{"externalId": ...}` (unverified in a reference field: NetSuite documents external IDs
  in URLs and as a record's own field).
- A credit memo's lines name the GL account they credit; a real account maps each to a
  non-inventory item (unverified). Its tax comes from AvaTax, sent as SuiteTax's
  `taxDetailsOverride` with one taxDetails line (field names unverified).
- Over-application is a 4xx validation answer: a business error, not retried.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from adapters.errors import BusinessError, IntegrationBug
from adapters.http import HttpAdapter, json_content, read_json, send
from adapters.netsuite_errors import SYSTEM, classify
from canonical.models import Model
from canonical.money import Money
from canonical.receivables import AppliedDocument, CreditMemoPosting, CustomerPayment, CustomerRefundPosting

INVOICE_FIELD = "custbody_o2c_invoice"
RECEIPT_FIELD = "custbody_o2c_receipt"  # the receipt a payment posts (o2c's own field id)
PAYMENT = "customerPayment"
CREDIT_MEMO = "creditMemo"
REFUND = "customerRefund"
SUITEQL_PAGE = 1000
# Invoices a receivables lookup names in one IN list (unverified: SuiteQL's limit on a
# query's length; 200 invoice ids stay well inside it).
RECEIVABLE_CHUNK = 200


class OpenReceivable(Model):
    """One A/R document of a customer as the ERP holds it: what it booked and what is open."""

    erp_document: str
    invoice_id: str
    original: Money
    open: Money


def _literal(value: str) -> str:
    return value if value.isdigit() else "'" + value.replace("'", "''") + "'"


def _internal_id(response: httpx.Response) -> str:
    location = response.headers.get("location", "")
    internal_id = location.rstrip("/").rsplit("/", 1)[-1] if location else ""
    if not internal_id:
        raise IntegrationBug(
            SYSTEM, f"NetSuite answered {response.status_code} without a Location header", status=response.status_code
        )
    return internal_id


def _apply(applications: list[AppliedDocument]) -> dict[str, Any]:
    return {
        "items": [
            {"doc": {"id": a.erp_document}, "apply": True, "amount": a.amount.amount}
            for a in applications
            if not a.amount.is_zero
        ]
    }


class NetSuiteReceivables(HttpAdapter):
    """The receivables half of NetSuiteErp (mixed into it)."""

    receivable_account: str = "1200"

    def _path(self, record_type: str, external_id: str) -> str:
        return f"/record/v1/{record_type}/eid:{quote(external_id, safe='')}"

    async def _query(self, q: str, *, limit: int = SUITEQL_PAGE, offset: int = 0) -> dict[str, Any]:
        """One page of a SuiteQL query (every NetSuite listing reads through it)."""
        response = await send(
            self._client,
            SYSTEM,
            "POST",
            "/query/v1/suiteql",
            params={"limit": limit, "offset": offset},
            headers={"Prefer": "transient"},
            content=json_content({"q": q}),
        )
        if response.status_code >= 400:
            raise classify(response, what="the SuiteQL query")
        return read_json(response)

    async def _upsert(self, record_type: str, external_id: str, body: dict[str, Any], what: str) -> str:
        response = await send(
            self._client,
            SYSTEM,
            "PUT",
            self._path(record_type, external_id),
            params={"replace": "apply"},
            content=json_content(body),
        )
        if response.status_code >= 400:
            raise classify(response, what=what)
        return _internal_id(response)

    async def _read(self, record_type: str, ref: str) -> dict[str, Any] | None:
        response = await send(self._client, SYSTEM, "GET", f"/record/v1/{record_type}/{ref}")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise classify(response, what=f"{record_type} {ref}")
        return read_json(response)

    async def customer_external_id(self, internal_id: str) -> str:
        """The external id (billing customer id) of the customer with this internal id."""
        record = await self._read("customer", quote(internal_id, safe=""))
        if record is None:
            raise IntegrationBug(SYSTEM, f"customer {internal_id}, named on a transaction, does not exist")
        return str(record.get("externalId") or "")

    async def _customer_internal_id(self, external_id: str) -> str | None:
        record = await self._read("customer", f"eid:{quote(external_id, safe='')}")
        return None if record is None else str(record["id"])

    # -- documents -------------------------------------------------------------------------

    async def receivable_document(self, invoice_id: str, *, subsidiary: str) -> str | None:
        """The journal entry booking the billing invoice in the subsidiary: not a reversal,
        and debiting the receivable account (a usage accrual carries the invoice id too)."""
        headers = await self._query(
            "SELECT t.id AS id FROM transaction t "
            f"WHERE t.type = 'Journal' AND t.{INVOICE_FIELD} = {_literal(invoice_id)} "
            f"AND t.subsidiary = {_literal(subsidiary)} AND t.custbody_o2c_reverses IS NULL ORDER BY t.id"
        )
        ids = [str(row["id"]) for row in headers.get("items") or []]
        if not ids:
            return None
        lines = await self._query(
            "SELECT tal.transaction AS transaction FROM transactionaccountingline tal "
            f"WHERE tal.transaction IN ({', '.join(ids)}) AND tal.account = {_literal(self.receivable_account)} "
            "AND tal.debit > 0 ORDER BY tal.transaction"
        )
        found = [str(row["transaction"]) for row in lines.get("items") or []]
        return found[0] if found else None

    async def receivable_documents(self, invoice_ids: list[str], *, subsidiary: str) -> dict[str, str]:
        """receivable_document for many invoices at once: two SuiteQL queries per
        RECEIVABLE_CHUNK invoices instead of two per invoice. An invoice without one is left out."""
        found: dict[str, str] = {}
        wanted = sorted(set(invoice_ids))
        for start in range(0, len(wanted), RECEIVABLE_CHUNK):
            chunk = wanted[start : start + RECEIVABLE_CHUNK]
            headers = await self._all(
                f"SELECT t.id AS id, t.{INVOICE_FIELD} AS invoice FROM transaction t "
                f"WHERE t.type = 'Journal' AND t.{INVOICE_FIELD} IN ({', '.join(_literal(i) for i in chunk)}) "
                f"AND t.subsidiary = {_literal(subsidiary)} AND t.custbody_o2c_reverses IS NULL ORDER BY t.id"
            )
            invoice_of = {str(row["id"]): str(row["invoice"]) for row in headers}
            if not invoice_of:
                continue
            lines = await self._all(
                "SELECT tal.transaction AS transaction FROM transactionaccountingline tal "
                f"WHERE tal.transaction IN ({', '.join(invoice_of)}) AND tal.account = {_literal(self.receivable_account)} "
                "AND tal.debit > 0 ORDER BY tal.transaction"
            )
            for row in lines:
                # The first entry by id, as receivable_document answers.
                found.setdefault(invoice_of[str(row["transaction"])], str(row["transaction"]))
        return found

    async def _all(self, q: str) -> list[dict[str, Any]]:
        """Every row of a query, page by page."""
        rows: list[dict[str, Any]] = []
        while True:
            page = await self._query(q, offset=len(rows))
            items = page.get("items") or []
            rows.extend(items)
            if not page.get("hasMore") or not items:
                return rows

    async def open_amount(self, erp_document: str) -> Money | None:
        """Open on an A/R document (foreignamountunpaid), unapplied on a payment or a credit
        memo (foreignpaymentamountunused); None for a document NetSuite does not hold or
        that is neither."""
        if not erp_document.isdigit():
            return None
        page = await self._query(
            "SELECT t.id AS id, t.type AS type, BUILTIN.DF(t.currency) AS currency, "
            "t.foreignamountunpaid AS unpaid, t.foreignpaymentamountunused AS unused "
            f"FROM transaction t WHERE t.id = {erp_document}"
        )
        rows = page.get("items") or []
        if not rows:
            return None
        row = rows[0]
        raw = row.get("unused") if row.get("type") in ("CustPymt", "CustCred") else row.get("unpaid")
        if raw is None:
            return None
        return Money.of(Decimal(str(raw)), row["currency"])

    async def receivables_of_customer(self, customer: str) -> list[OpenReceivable]:
        """Every A/R document of the customer (its external id) with what it booked and what
        is still open, in internal-id order: what the ledger checks compare with o2c's own
        books. Pages by id (keyset), as REST SuiteQL stops at 100,000 rows of offset."""
        entity = await self._customer_internal_id(customer)
        if entity is None:
            return []
        out: list[OpenReceivable] = []
        after = 0
        while True:
            page = await self._query(
                f"SELECT t.id AS id, t.{INVOICE_FIELD} AS invoice, BUILTIN.DF(t.currency) AS currency, "
                "t.foreigntotal AS total, t.foreignamountunpaid AS unpaid FROM transaction t "
                f"WHERE t.entity = {entity} AND t.type IN ('Journal', 'CustInvc') AND t.id > {after} ORDER BY t.id"
            )
            rows = page.get("items") or []
            for row in rows:
                currency = row["currency"]
                out.append(
                    OpenReceivable(
                        erp_document=str(row["id"]),
                        invoice_id=row.get("invoice") or "",
                        original=Money.of(Decimal(str(row.get("total") or 0)), currency),
                        open=Money.of(Decimal(str(row.get("unpaid") or 0)), currency),
                    )
                )
            if not page.get("hasMore") or not rows:
                return out
            after = int(rows[-1]["id"])

    async def _invoice_ids(self, documents: list[str]) -> dict[str, str]:
        ids = [d for d in documents if d.isdigit()]
        if not ids:
            return {}
        page = await self._query(
            f"SELECT t.id AS id, t.{INVOICE_FIELD} AS invoice FROM transaction t WHERE t.id IN ({', '.join(ids)})"
        )
        return {str(row["id"]): row.get("invoice") or "" for row in page.get("items") or []}

    # -- customer payments -----------------------------------------------------------------

    async def post_customer_payment(self, payment: CustomerPayment) -> str:
        body: dict[str, Any] = {
            "externalId": payment.external_id,
            "customer": {"externalId": payment.customer},
            "payment": payment.amount.amount,
            "tranDate": payment.tran_date.isoformat(),
            "subsidiary": {"id": payment.subsidiary},
            "currency": {"refName": payment.amount.currency},
            "account": {"id": payment.account},
            "aracct": {"id": self.receivable_account},
            "memo": payment.memo,
            "apply": _apply(payment.applications),
        }
        if payment.receipt_id:
            body[RECEIPT_FIELD] = payment.receipt_id
        return await self._upsert(PAYMENT, payment.external_id, body, f"customer payment {payment.external_id}")

    async def get_customer_payment(self, external_id: str) -> CustomerPayment | None:
        record = await self._read(PAYMENT, f"eid:{quote(external_id, safe='')}")
        if record is None:
            return None
        currency = (record.get("currency") or {}).get("refName") or ""
        lines = (record.get("apply") or {}).get("items") or []
        invoices = await self._invoice_ids([str(line["doc"]["id"]) for line in lines])
        return CustomerPayment(
            external_id=record.get("externalId") or external_id,
            customer=await self.customer_external_id(str(record["customer"]["id"])),
            subsidiary=str(record["subsidiary"]["id"]),
            amount=Money.of(Decimal(str(record["payment"])), currency),
            tran_date=date.fromisoformat(record["tranDate"]),
            account=str((record.get("account") or {}).get("id") or ""),
            applications=[
                AppliedDocument(
                    erp_document=str(line["doc"]["id"]),
                    invoice_id=invoices.get(str(line["doc"]["id"]), ""),
                    amount=Money.of(Decimal(str(line["amount"])), currency),
                )
                for line in lines
            ],
            memo=record.get("memo") or "",
            receipt_id=record.get(RECEIPT_FIELD) or "",
        )

    # -- credit memos ----------------------------------------------------------------------

    async def post_credit_memo(self, memo: CreditMemoPosting) -> str:
        body: dict[str, Any] = {
            "externalId": memo.external_id,
            "entity": {"externalId": memo.customer},
            "tranDate": memo.tran_date.isoformat(),
            "subsidiary": {"id": memo.subsidiary},
            "currency": {"refName": memo.currency},
            "memo": memo.memo,
            INVOICE_FIELD: memo.invoice_id,
            "item": {
                "items": [
                    {"account": {"id": line.account}, "amount": line.amount.amount, "description": line.memo}
                    for line in memo.lines
                ]
            },
            "apply": {"items": []},
        }
        if not memo.tax.is_zero:
            net = memo.total - memo.tax
            body["taxDetailsOverride"] = True
            body["taxDetails"] = {"items": [{"taxAmount": memo.tax.amount, "taxBasis": net.amount}]}
        if memo.apply_to:
            amount = memo.apply_amount if memo.apply_amount is not None else memo.total
            if not amount.is_zero:
                body["apply"]["items"].append({"doc": {"id": memo.apply_to}, "apply": True, "amount": amount.amount})
        return await self._upsert(CREDIT_MEMO, memo.external_id, body, f"credit memo {memo.external_id}")

    async def reverse_credit_memo(self, external_id: str) -> None:
        """Unapply the memo, then delete it; a memo NetSuite does not have is no error. A
        memo already refunded cannot be deleted: a business error naming it."""
        record = await self._read(CREDIT_MEMO, f"eid:{quote(external_id, safe='')}")
        if record is None:
            return
        path = f"/record/v1/{CREDIT_MEMO}/{record['id']}"
        what = f"the reversal of credit memo {external_id}"
        response = await send(
            self._client,
            SYSTEM,
            "PATCH",
            path,
            params={"replace": "apply"},
            content=json_content({"apply": {"items": []}}),
        )
        if response.status_code == 404:
            return
        if response.status_code >= 400:
            raise classify(response, what=what)
        response = await send(self._client, SYSTEM, "DELETE", path)
        if response.status_code >= 400 and response.status_code != 404:
            raise classify(response, what=what)

    # -- customer refunds ------------------------------------------------------------------

    async def post_customer_refund(self, refund: CustomerRefundPosting) -> str:
        """NetSuite's refund total is what its apply lines refund: they must add up to it."""
        refunded = sum((a.amount for a in refund.applications), Money.zero(refund.amount.currency))
        if refunded != refund.amount or refund.amount.is_zero or refund.amount.is_negative:
            raise BusinessError(
                SYSTEM,
                f"refund {refund.external_id} of {refund.amount} applies {refunded} to payments and credit memos: "
                "a refund must be positive and refund exactly what its lines name",
            )
        body = {
            "externalId": refund.external_id,
            "customer": {"externalId": refund.customer},
            "tranDate": refund.tran_date.isoformat(),
            "subsidiary": {"id": refund.subsidiary},
            "currency": {"refName": refund.amount.currency},
            "account": {"id": refund.account},
            "memo": refund.memo,
            "apply": _apply(refund.applications),
        }
        return await self._upsert(REFUND, refund.external_id, body, f"customer refund {refund.external_id}")
