"""NetSuite (SuiteTalk REST record service) as o2c's ERP: journal entries, customers,
collection cases; receivables (payments, credit memos, refunds) in netsuite_receivables.py.

Idempotency is the external ID: entries are upserted with
`PUT /record/v1/journalEntry/eid:{externalId}`, so posting the same entry twice
leaves one. 5xx and timeouts are transient (the retry upserts the same external ID).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from adapters.errors import IntegrationBug
from adapters.http import JSON_HEADERS, json_content, read_json, send
from adapters.netsuite_errors import ERRORS as ERRORS
from adapters.netsuite_errors import PERIOD_CLOSED as PERIOD_CLOSED
from adapters.netsuite_errors import SYSTEM, classify
from adapters.netsuite_errors import read_error as read_error
from adapters.netsuite_receivables import NetSuiteReceivables
from canonical.journal import JournalEntry, JournalEntryPage, JournalLine
from canonical.models import Account, Address, CollectionCase, JournalEntryRef
from canonical.money import Money

# The AR collection case: a custom record type with o2c's own field ids (a NetSuite
# account defines them; custom records are reachable through the REST record service).
CASE_TYPE = "customrecord_o2c_collection_case"
# Transaction body custom fields o2c defines (their ids are o2c's own: a real account
# defines its custom fields): the entry an entry reverses, the billing invoice it books
# and the contract whose revenue it recognises (the keys reconciliation matches on).
REVERSES_FIELD = "custbody_o2c_reverses"
INVOICE_FIELD = "custbody_o2c_invoice"
CONTRACT_FIELD = "custbody_o2c_contract"
# SuiteQL: at most this many rows per request. The lines of a page of entries are read
# by IN lists of LINES_CHUNK ids (SuiteQL takes up to 1000): o2c's entries have two or
# three lines, so a chunk's lines usually fit one response, and each request makes
# NetSuite evaluate only the entries it returns.
SUITEQL_PAGE = 1000
LINES_CHUNK = 300


def to_wire(entry: JournalEntry) -> dict[str, Any]:
    """The entry's record. The customer is named (`entity`) on every line, not only the
    receivable's: NetSuite needs the name on an A/R line and takes it on any other, where
    it reports revenue and tax by customer; and the adapter need not know which account
    of the chart is the receivable (that is o2c's configuration, not the entry's)."""
    entity = {"entity": {"externalId": entry.customer}} if entry.customer else {}
    body: dict[str, Any] = {
        "externalId": entry.external_id,
        "subsidiary": {"id": entry.subsidiary},
        "currency": {"refName": entry.currency},
        "tranDate": entry.posting_date.isoformat(),
        "memo": entry.memo,
        "line": {
            "items": [
                {
                    "account": {"id": line.account},
                    **({"debit": line.debit.amount} if line.debit else {}),
                    **({"credit": line.credit.amount} if line.credit else {}),
                    "memo": line.memo,
                    **entity,
                }
                for line in entry.lines
            ]
        },
    }
    if entry.reverses:
        body[REVERSES_FIELD] = entry.reverses
    if entry.invoice_id:
        body[INVOICE_FIELD] = entry.invoice_id
    if entry.contract_id:
        body[CONTRACT_FIELD] = entry.contract_id
    return body


def from_wire(record: dict[str, Any], *, customer: str = "") -> JournalEntry:
    """The entry a record holds; `customer` is the external id of the customer its lines
    name (a record names it by internal id: the caller resolves it)."""
    currency_ref = record.get("currency") or {}
    currency = currency_ref.get("refName") or currency_ref.get("id") or ""
    lines = []
    for item in (record.get("line") or {}).get("items", []):
        debit = item.get("debit")
        credit = item.get("credit")
        lines.append(
            JournalLine(
                account=str((item.get("account") or {}).get("id") or ""),
                debit=None if debit is None else Money.of(Decimal(str(debit)), currency),
                credit=None if credit is None else Money.of(Decimal(str(credit)), currency),
                memo=item.get("memo") or "",
            )
        )
    return JournalEntry(
        external_id=record.get("externalId") or "",
        subsidiary=str((record.get("subsidiary") or {}).get("id") or ""),
        currency=currency,
        posting_date=date.fromisoformat(record["tranDate"]),
        memo=record.get("memo") or "",
        lines=lines,
        reverses=record.get(REVERSES_FIELD) or "",
        invoice_id=record.get(INVOICE_FIELD) or "",
        contract_id=record.get(CONTRACT_FIELD) or "",
        customer=customer,
    )


def line_entity(record: dict[str, Any]) -> str:
    """The internal id of the customer the record's lines name, or ""."""
    for item in (record.get("line") or {}).get("items", []):
        entity = (item.get("entity") or {}).get("id")
        if entity:
            return str(entity)
    return ""


def _literal(value: str) -> str:
    """A SuiteQL literal: a number as it is, anything else quoted."""
    return value if value.isdigit() else "'" + value.replace("'", "''") + "'"


def _headers_query(subsidiary: str, date_from: date, date_to: date, after: int) -> str:
    return (
        "SELECT t.id AS id, t.externalid AS externalid, TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate, "
        "t.subsidiary AS subsidiary, BUILTIN.DF(t.currency) AS currency, t.memo AS memo, "
        f"t.{REVERSES_FIELD} AS {REVERSES_FIELD}, t.{INVOICE_FIELD} AS {INVOICE_FIELD}, "
        f"t.{CONTRACT_FIELD} AS {CONTRACT_FIELD} "
        "FROM transaction t "
        f"WHERE t.type = 'Journal' AND t.subsidiary = {_literal(subsidiary)} "
        f"AND t.trandate >= TO_DATE('{date_from.isoformat()}', 'YYYY-MM-DD') "
        f"AND t.trandate < TO_DATE('{date_to.isoformat()}', 'YYYY-MM-DD') "
        f"AND t.id > {after} ORDER BY t.id"
    )


def _lines_query(ids: list[str]) -> str:
    return (
        "SELECT tal.transaction AS transaction, tal.transactionline AS transactionline, tal.account AS account, "
        "tal.debit AS debit, tal.credit AS credit FROM transactionaccountingline tal "
        f"WHERE tal.transaction IN ({', '.join(ids)}) ORDER BY tal.transaction"
    )


def _from_rows(header: dict[str, Any], lines: list[dict[str, Any]]) -> JournalEntry:
    """A journal entry from its SuiteQL header row and accounting lines. Amounts of
    transactionaccountingline are in the subsidiary's base currency; o2c books each
    entity in its functional currency, so they are in the entry's currency."""
    currency = header.get("currency") or ""
    try:
        out = []
        for line in sorted(lines, key=lambda x: int(x.get("transactionline") or 0)):
            debit, credit = Decimal(line.get("debit") or 0), Decimal(line.get("credit") or 0)
            if debit == 0 and credit == 0:
                continue  # NetSuite may list zero lines; o2c's entries have none
            out.append(
                JournalLine(
                    account=str(line.get("account") or ""),
                    debit=Money.of(debit, currency) if debit else None,
                    credit=Money.of(credit, currency) if credit else None,
                )
            )
        return JournalEntry(
            external_id=header.get("externalid") or "",
            subsidiary=str(header.get("subsidiary") or ""),
            currency=currency,
            posting_date=date.fromisoformat(header["trandate"]),
            memo=header.get("memo") or "",
            lines=out,
            reverses=header.get(REVERSES_FIELD) or "",
            invoice_id=header.get(INVOICE_FIELD) or "",
            contract_id=header.get(CONTRACT_FIELD) or "",
            internal_id=str(header["id"]),
        )
    except (KeyError, ValueError, ArithmeticError) as exc:
        raise IntegrationBug(
            SYSTEM,
            f"journal entry {header.get('id')} ({header.get('externalid')}) read back by "
            f"SuiteQL is not a valid entry: {exc}",
        ) from exc


class NetSuiteErp(NetSuiteReceivables):
    """ErpPort and ReceivablesPort over NetSuite REST. `base_url` ends in `/services/rest`;
    `receivable_account` is the chart's Accounts Receivable (ChartOfAccounts.receivable)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        timeout: float = 10.0,
        *,
        client: httpx.AsyncClient | None = None,
        receivable_account: str = "1200",
    ):
        super().__init__(base_url, timeout, {"Authorization": f"Bearer {token}", **JSON_HEADERS}, client)
        self.receivable_account = receivable_account

    @staticmethod
    def _eid_path(external_id: str) -> str:
        return f"/record/v1/journalEntry/eid:{quote(external_id, safe='')}"

    async def post_journal_entry(self, entry: JournalEntry) -> JournalEntryRef:
        response = await send(
            self._client, SYSTEM, "PUT", self._eid_path(entry.external_id), content=json_content(to_wire(entry))
        )
        if response.status_code >= 400:
            raise classify(response, entry)
        location = response.headers.get("location", "")
        internal_id = location.rstrip("/").rsplit("/", 1)[-1] if location else ""
        if not internal_id:
            raise IntegrationBug(
                SYSTEM,
                f"NetSuite answered {response.status_code} without a Location header",
                status=response.status_code,
            )
        return JournalEntryRef(external_id=entry.external_id, internal_id=internal_id, location=location)

    async def get_journal_entry(self, external_id: str) -> JournalEntry | None:
        response = await send(
            self._client, SYSTEM, "GET", self._eid_path(external_id), params={"expandSubResources": "true"}
        )
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise classify(response)
        record = read_json(response)
        entity = line_entity(record)
        return from_wire(record, customer=await self.customer_external_id(entity) if entity else "")

    # -- listing -------------------------------------------------------------------------

    async def list_journal_entries_page(
        self, *, subsidiary: str, date_from: date, date_to: date, cursor: str = "", limit: int = 1000
    ) -> JournalEntryPage:
        """One page of the subsidiary's journal entries dated in [date_from, date_to), in
        internal-id order, with their lines: SuiteQL pages by keyset (id > the cursor,
        the last id of the previous page), since REST SuiteQL stops at 100,000 rows of
        offset; then the page's accounting lines, by IN lists of ids. Line memos are not
        read back (transactionaccountingline has none)."""
        if date_to <= date_from:
            return JournalEntryPage(items=[])
        if cursor and not cursor.isdigit():
            raise IntegrationBug(SYSTEM, f"not a NetSuite listing cursor (an internal id): {cursor!r}")
        limit = max(1, min(limit, SUITEQL_PAGE))
        page = await self._query(_headers_query(subsidiary, date_from, date_to, int(cursor or 0)), limit=limit)
        headers = page.get("items") or []
        ids = [str(h["id"]) for h in headers]
        lines: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        for start in range(0, len(ids), LINES_CHUNK):
            query = _lines_query(ids[start : start + LINES_CHUNK])
            offset = 0
            while True:
                chunk = await self._query(query, limit=SUITEQL_PAGE, offset=offset)
                for row in chunk.get("items") or []:
                    lines.setdefault(str(row["transaction"]), []).append(row)
                if not chunk.get("hasMore"):
                    break
                offset += SUITEQL_PAGE
        items = [_from_rows(header, lines[str(header["id"])]) for header in headers]
        return JournalEntryPage(items=items, next_cursor=ids[-1] if page.get("hasMore") and ids else "")

    # -- customers -----------------------------------------------------------------------

    @staticmethod
    def _internal_id(response: httpx.Response) -> str:
        location = response.headers.get("location", "")
        internal_id = location.rstrip("/").rsplit("/", 1)[-1] if location else ""
        if not internal_id:
            raise IntegrationBug(
                SYSTEM,
                f"NetSuite answered {response.status_code} without a Location header",
                status=response.status_code,
            )
        return internal_id

    async def upsert_customer(self, account: Account, *, subsidiary: str) -> str:
        """`PUT /record/v1/customer/eid:{account.id}`: the billing customer id is the
        external ID, so upserting twice leaves one customer. Returns the internal id."""
        address = account.billing_address
        body: dict[str, Any] = {
            "companyName": account.name,
            "isPerson": False,
            "subsidiary": {"id": subsidiary},
        }
        if account.email:
            body["email"] = account.email
        if any((address.line1, address.city, address.region, address.postal_code, address.country)):
            book_address: dict[str, Any] = {
                "addr1": address.line1,
                "city": address.city,
                "state": address.region,
                "zip": address.postal_code,
            }
            if address.country:
                book_address["country"] = {"id": address.country}
            body["addressBook"] = {
                "items": [
                    {
                        "defaultBilling": True,
                        "defaultShipping": False,
                        "label": "Billing",
                        "addressBookAddress": book_address,
                    }
                ]
            }
        response = await send(
            self._client,
            SYSTEM,
            "PUT",
            f"/record/v1/customer/eid:{quote(account.id, safe='')}",
            content=json_content(body),
        )
        if response.status_code >= 400:
            raise classify(response, what=f"customer {account.id} ({account.name})")
        return self._internal_id(response)

    async def get_customer(self, external_id: str) -> Account | None:
        """The customer with this external ID (the billing customer id), or None."""
        response = await send(
            self._client,
            SYSTEM,
            "GET",
            f"/record/v1/customer/eid:{quote(external_id, safe='')}",
            params={"expandSubResources": "true"},
        )
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise classify(response, what=f"customer {external_id}")
        record = read_json(response)
        items = (record.get("addressBook") or {}).get("items") or []
        billing = next((i for i in items if i.get("defaultBilling")), items[0] if items else {})
        book = billing.get("addressBookAddress") or {}
        return Account(
            id=record.get("externalId") or external_id,
            name=record.get("companyName") or "",
            email=record.get("email") or "",
            billing_address=Address(
                line1=book.get("addr1") or "",
                city=book.get("city") or "",
                region=book.get("state") or "",
                postal_code=book.get("zip") or "",
                country=(book.get("country") or {}).get("id") or "",
            ),
        )

    # -- collection cases ----------------------------------------------------------------

    async def upsert_collection_case(self, case: CollectionCase) -> CollectionCase:
        """Create or move the case by its external ID: the same case upserted twice is one
        record holding the latest stage and status."""
        path = f"/record/v1/{CASE_TYPE}/eid:{quote(case.external_id, safe='')}"
        body = {
            "custrecord_o2c_customer": case.account_id,
            "custrecord_o2c_invoice": case.invoice_id,
            "custrecord_o2c_amount": case.amount.amount,
            "custrecord_o2c_currency": case.amount.currency,
            "custrecord_o2c_stage": case.stage,
            "custrecord_o2c_status": case.status,
            "subsidiary": {"id": case.subsidiary},
        }
        response = await send(self._client, SYSTEM, "PUT", path, content=json_content(body))
        if response.status_code >= 400:
            raise classify(response, what=f"collection case {case.external_id}")
        location = response.headers.get("location", "")
        internal_id = location.rstrip("/").rsplit("/", 1)[-1] if location else ""
        if not internal_id:
            raise IntegrationBug(
                SYSTEM,
                f"NetSuite answered {response.status_code} without a Location header",
                status=response.status_code,
            )
        return case.model_copy(update={"internal_id": internal_id})

    async def get_collection_case(self, external_id: str) -> CollectionCase | None:
        response = await send(self._client, SYSTEM, "GET", f"/record/v1/{CASE_TYPE}/eid:{quote(external_id, safe='')}")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise classify(response)
        record = read_json(response)
        currency = record.get("custrecord_o2c_currency") or "USD"
        return CollectionCase(
            external_id=record.get("externalId") or external_id,
            account_id=record.get("custrecord_o2c_customer") or "",
            invoice_id=record.get("custrecord_o2c_invoice") or "",
            subsidiary=str((record.get("subsidiary") or {}).get("id") or "1"),
            amount=Money.of(Decimal(str(record.get("custrecord_o2c_amount") or 0)), currency),
            stage=record.get("custrecord_o2c_stage") or "",
            status=record.get("custrecord_o2c_status") or "open",
            internal_id=str(record.get("id") or ""),
        )
