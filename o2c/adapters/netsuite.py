"""NetSuite (SuiteTalk REST record service) as o2c's ERP: journal entries, customers,
collection cases.

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

from o2c.adapters._http import HttpAdapter, JSON_HEADERS, json_content, read_json, send
from o2c.adapters.errors import AdapterError, BusinessError, IntegrationBug, TransientError
from o2c.canonical.journal import JournalEntry, JournalLine
from o2c.canonical.models import Account, Address, CollectionCase, JournalEntryRef
from o2c.canonical.money import Money

SYSTEM = "netsuite"
# The AR collection case: a custom record type with o2c's own field ids (a NetSuite
# account defines them; custom records are reachable through the REST record service).
CASE_TYPE = "customrecord_o2c_collection_case"
# A transaction body custom field for the entry an entry reverses (a reasonable
# assumption: real accounts define their own custom fields).
REVERSES_FIELD = "custbody_o2c_reverses"


def _details(response: httpx.Response) -> list[dict[str, Any]]:
    body = read_json(response)
    return (body.get("o:errorDetails") or []) if isinstance(body, dict) else []


def classify(response: httpx.Response, entry: JournalEntry | None = None, *,
             what: str = "the journal entry") -> AdapterError:
    status = response.status_code
    details = _details(response)
    first = details[0] if details else {}
    code = first.get("o:errorCode", "")
    detail = first.get("detail") or f"HTTP {status}"
    if status in (401, 403):
        return IntegrationBug(SYSTEM, f"NetSuite rejected o2c's token or role: {detail}", code=code, status=status)
    if status in (408, 409, 429) or status >= 500:
        return TransientError(SYSTEM, detail, code=code, status=status)
    text = detail.lower()
    if first.get("o:errorPath") == "postingPeriod" or ("period" in text and ("closed" in text or "locked" in text)):
        when = f" for {entry.posting_date.isoformat()} (subsidiary {entry.subsidiary})" if entry else ""
        return BusinessError(
            SYSTEM,
            f"The ERP accounting period{when} is closed: reopen it in NetSuite or move the posting date. ({detail})",
            code=code or "PERIOD_CLOSED", status=status, fixable=True,
        )
    return BusinessError(SYSTEM, f"NetSuite refused {what}: {detail}", code=code, status=status)


def to_wire(entry: JournalEntry) -> dict[str, Any]:
    body: dict[str, Any] = {
        "externalId": entry.external_id,
        "subsidiary": {"id": entry.subsidiary},
        "currency": {"refName": entry.currency},
        "tranDate": entry.posting_date.isoformat(),
        "memo": entry.memo,
        "line": {"items": [
            {
                "account": {"id": line.account},
                **({"debit": line.debit.amount} if line.debit else {}),
                **({"credit": line.credit.amount} if line.credit else {}),
                "memo": line.memo,
            }
            for line in entry.lines
        ]},
    }
    if entry.reverses:
        body[REVERSES_FIELD] = entry.reverses
    return body


def from_wire(record: dict[str, Any]) -> JournalEntry:
    currency_ref = record.get("currency") or {}
    currency = currency_ref.get("refName") or currency_ref.get("id") or ""
    lines = []
    for item in (record.get("line") or {}).get("items", []):
        debit = item.get("debit")
        credit = item.get("credit")
        lines.append(JournalLine(
            account=str((item.get("account") or {}).get("id") or ""),
            debit=None if debit is None else Money.of(Decimal(str(debit)), currency),
            credit=None if credit is None else Money.of(Decimal(str(credit)), currency),
            memo=item.get("memo") or "",
        ))
    return JournalEntry(
        external_id=record.get("externalId") or "",
        subsidiary=str((record.get("subsidiary") or {}).get("id") or ""),
        currency=currency,
        posting_date=date.fromisoformat(record["tranDate"]),
        memo=record.get("memo") or "",
        lines=lines,
        reverses=record.get(REVERSES_FIELD) or "",
    )


class NetSuiteErp(HttpAdapter):
    """ErpPort over NetSuite REST. `base_url` ends in `/services/rest`."""

    def __init__(self, base_url: str, token: str, timeout: float = 10.0, *,
                 client: httpx.AsyncClient | None = None):
        super().__init__(base_url, timeout, {"Authorization": f"Bearer {token}", **JSON_HEADERS}, client)

    @staticmethod
    def _eid_path(external_id: str) -> str:
        return f"/record/v1/journalEntry/eid:{quote(external_id, safe='')}"

    async def post_journal_entry(self, entry: JournalEntry) -> JournalEntryRef:
        response = await send(self._client, SYSTEM, "PUT", self._eid_path(entry.external_id),
                               content=json_content(to_wire(entry)))
        if response.status_code >= 400:
            raise classify(response, entry)
        location = response.headers.get("location", "")
        internal_id = location.rstrip("/").rsplit("/", 1)[-1] if location else ""
        if not internal_id:
            raise IntegrationBug(SYSTEM, f"NetSuite answered {response.status_code} without a Location header",
                                 status=response.status_code)
        return JournalEntryRef(external_id=entry.external_id, internal_id=internal_id, location=location)

    async def get_journal_entry(self, external_id: str) -> JournalEntry | None:
        response = await send(self._client, SYSTEM, "GET", self._eid_path(external_id),
                               params={"expandSubResources": "true"})
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise classify(response)
        return from_wire(read_json(response))

    # -- customers -----------------------------------------------------------------------

    @staticmethod
    def _internal_id(response: httpx.Response) -> str:
        location = response.headers.get("location", "")
        internal_id = location.rstrip("/").rsplit("/", 1)[-1] if location else ""
        if not internal_id:
            raise IntegrationBug(SYSTEM, f"NetSuite answered {response.status_code} without a Location header",
                                 status=response.status_code)
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
            book_address: dict[str, Any] = {"addr1": address.line1, "city": address.city, "state": address.region,
                                            "zip": address.postal_code}
            if address.country:
                book_address["country"] = {"id": address.country}
            body["addressBook"] = {"items": [{"defaultBilling": True, "defaultShipping": False,
                                              "label": "Billing", "addressBookAddress": book_address}]}
        response = await send(self._client, SYSTEM, "PUT", f"/record/v1/customer/eid:{quote(account.id, safe='')}",
                              content=json_content(body))
        if response.status_code >= 400:
            raise classify(response, what=f"customer {account.id} ({account.name})")
        return self._internal_id(response)

    async def get_customer(self, external_id: str) -> Account | None:
        """The customer with this external ID (the billing customer id), or None."""
        response = await send(self._client, SYSTEM, "GET", f"/record/v1/customer/eid:{quote(external_id, safe='')}",
                              params={"expandSubResources": "true"})
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
            raise IntegrationBug(SYSTEM, f"NetSuite answered {response.status_code} without a Location header",
                                 status=response.status_code)
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
