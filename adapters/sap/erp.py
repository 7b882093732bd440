"""SAP S/4HANA Cloud as o2c's ERP for the legal entities that book there: journal entries
through the SOAP services of SAP_COM_0002, read back through the OData item cube, and
customers as business partners (SAP_COM_0008, partners.py).

SAP's journal entry post is not idempotent and answers HTTP 200 to a refusal. An entry is
therefore known by a reference derived from its external id (wire.py), and every post first
looks that reference up in the company code: a retry whose answer was lost finds the
document and posts nothing. Collection cases, customer payments, credit memos and refunds
are not kept in SAP by o2c (see docs/sap.md)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

import httpx

from adapters.errors import BusinessError, IntegrationBug
from adapters.http import read_json, send
from adapters.sap.errors import SYSTEM, classify, refusal
from adapters.sap.ledger import ORDER, SERVICE, EntryReader, datetime_literal, document_of, group, literal
from adapters.sap.partners import BusinessPartners
from adapters.sap.wire import (
    BULK_PATH,
    MESSAGE_ID_LIMIT,
    SOAP_ACTION,
    SYNC_PATH,
    Header,
    WireLine,
    document_reference,
    entry_request,
    envelope,
    item_tags,
    message_id,
    read_confirmations,
)
from canonical.journal import JournalEntry, JournalEntryPage
from canonical.models import Account, CollectionCase, JournalEntryRef

# SAP's documents hold at most 999 items (AccountingDocumentItem has 3 digits), so a read
# of 1000 items always ends at least one document.
MAX_ITEMS = 999
MAX_TOP = 5000
USER_LIMIT = 12  # CreatedByUser


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_gl_account(account: str) -> str:
    """o2c's account code as SAP's G/L account: zero-padded to 10 digits ("1200" ->
    "0000001200"). A deployment whose chart differs passes `gl_accounts`."""
    if not account.isdigit() or len(account) > 10:
        raise IntegrationBug(SYSTEM, f"account {account!r} has no SAP G/L account: it is not up to 10 digits")
    return account.zfill(10)


class SapErp:
    """ErpPort over SAP S/4HANA Cloud. `base_url` is the tenant's API host
    (https://<tenant>-api.s4hana.cloud.sap); `user`/`password` the communication user (basic
    auth); `logical_system` the logical system o2c's documents come from (it marks them in
    SAP); `gl_accounts` maps o2c's account codes to SAP G/L accounts (default: zero-padded
    to 10 digits; with a mapping, an account it lacks is refused); `company_codes` the
    company codes get_journal_entry searches; `receivable_account` the chart's receivable,
    posted as a debtor item when the entry names a customer. Entries of at least
    `bulk_threshold` go through the asynchronous bulk service in post_journal_entries."""

    def __init__(
        self,
        base_url: str,
        user: str,
        password: str,
        *,
        logical_system: str,
        timeout: float = 10.0,
        gl_accounts: dict[str, str] | None = None,
        company_codes: list[str] | None = None,
        receivable_account: str = "1200",
        bulk_threshold: int = 50,
        bulk_wait: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, auth=httpx.BasicAuth(user, password)
        )
        self.user = user[:USER_LIMIT]  # unverified: CreatedByUser may be any user; SAP keeps 12 characters
        self.logical_system = logical_system
        self.gl_accounts = dict(gl_accounts) if gl_accounts is not None else None
        self._back = {v: k for k, v in (self.gl_accounts or {}).items()}
        self.company_codes = list(company_codes or [])
        self.receivable_account = receivable_account
        self.bulk_threshold = bulk_threshold
        self.bulk_wait = bulk_wait
        self.partners = BusinessPartners(self._client)
        self._reader = EntryReader(self._account_of, self.partners.external_id, logical_system)

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- accounts --------------------------------------------------------------------------

    def gl_account(self, account: str) -> str:
        if self.gl_accounts is None:
            return default_gl_account(account)
        if account not in self.gl_accounts:
            raise IntegrationBug(SYSTEM, f"account {account} has no SAP G/L account in o2c's mapping")
        return self.gl_accounts[account]

    def _account_of(self, gl_account: str) -> str:
        if self.gl_accounts is None:
            return (gl_account.lstrip("0") or "0") if gl_account.isdigit() else gl_account
        # An account o2c does not map (a document posted in SAP by hand) keeps SAP's number.
        return self._back.get(gl_account, gl_account)

    async def _wire_lines(self, entry: JournalEntry) -> list[WireLine]:
        """The entry's items: checked and mapped before anything is sent."""
        tags = item_tags(entry)
        lines = []
        for index, line in enumerate(entry.lines):
            debtor = ""
            if entry.customer and line.account == self.receivable_account:
                debtor = await self.partners.customer_number(entry.customer) or ""
                if not debtor:
                    raise BusinessError(
                        SYSTEM,
                        f"customer {entry.customer} is not a business partner in SAP yet: create the customer "
                        f"(upsert_customer) before posting entry {entry.external_id}",
                        code="CUSTOMER_UNKNOWN",
                        fixable=True,
                    )
            amount = line.amount.amount
            lines.append(
                WireLine(
                    gl_account="" if debtor else self.gl_account(line.account),
                    debtor=debtor,
                    amount=format(amount if line.debit else -amount, "f"),
                    currency=line.amount.currency,
                    debit=line.debit is not None,
                    text=tags[index] if index < len(tags) else line.memo,
                )
            )
        return lines

    # -- reading ---------------------------------------------------------------------------

    async def _items(self, filters: list[str], *, top: int, skip: int = 0) -> list[dict[str, Any]]:
        response = await send(
            self._client,
            SYSTEM,
            "GET",
            SERVICE,
            params={
                "$filter": " and ".join(filters),
                "$orderby": ORDER,
                "$top": str(top),
                "$skip": str(skip),
                "$format": "json",
            },
            headers={"Accept": "application/json"},
        )
        if response.status_code >= 400:
            raise classify(response, what="the journal entry items")
        rows = (read_json(response).get("d") or {}).get("results")
        if not isinstance(rows, list):
            raise IntegrationBug(SYSTEM, "the item cube answered without d.results")
        return rows

    async def _document(self, reference: str, company_code: str | None) -> list[dict[str, Any]] | None:
        """The items of o2c's document with this reference (the first posted, should there
        be two), or None."""
        filters = [f"DocumentReferenceID eq {literal(reference)}"]
        filters.append(f"ReferenceDocumentLogicalSystem eq {literal(self.logical_system)}")
        if company_code is not None:
            filters.insert(0, f"CompanyCode eq {literal(company_code)}")
        documents = group(await self._items(filters, top=MAX_ITEMS + 1))
        return documents[0] if documents else None

    async def get_journal_entry(self, external_id: str) -> JournalEntry | None:
        """The entry with this external id, read back from SAP. The port names no company
        code: the adapter searches the company codes it was given (`company_codes`), in
        turn, or, given none, filters on DocumentReferenceID and o2c's logical system alone
        (the reference is unique to o2c's id, the logical system to o2c's documents)."""
        reference = document_reference(external_id)
        codes: list[str | None] = list(self.company_codes) or [None]
        for code in codes:
            items = await self._document(reference, code)
            if items is not None:
                return await self._reader.entry(items, external_id=external_id)
        return None

    async def list_journal_entries_page(
        self, *, subsidiary: str, date_from: date, date_to: date, cursor: str = "", limit: int = 1000
    ) -> JournalEntryPage:
        """One page of the company code's documents posted in [date_from, date_to), in
        AccountingDocument order. The cursor is the number of items already read ($skip):
        a page ends on a document's last item, never inside one. New documents get higher
        numbers, so a posting between two pages adds at the end and shifts nothing."""
        if date_to <= date_from:
            return JournalEntryPage(items=[])
        if cursor and not cursor.isdigit():
            raise IntegrationBug(SYSTEM, f"not an SAP listing cursor (an item offset): {cursor!r}")
        skip = int(cursor or 0)
        limit = max(1, min(limit, 1000))
        filters = [
            f"CompanyCode eq {literal(subsidiary)}",
            f"PostingDate ge {datetime_literal(date_from)}",
            f"PostingDate lt {datetime_literal(date_to)}",
        ]
        top = min(MAX_TOP, max(limit * 4, 16))
        items = await self._items(filters, top=top, skip=skip)
        documents = group(items)
        full = len(items) == top
        if full and len(documents) == 1 and top <= MAX_ITEMS:
            top = MAX_ITEMS + 1  # one document filled the read: read enough to end it
            items = await self._items(filters, top=top, skip=skip)
            documents = group(items)
            full = len(items) == top
        if full:
            documents = documents[:-1]  # its last document may go on past the read
        more = full or len(documents) > limit
        documents = documents[:limit]
        entries = [await self._reader.entry(d) for d in documents]
        consumed = sum(len(d) for d in documents)
        return JournalEntryPage(items=entries, next_cursor=str(skip + consumed) if more and documents else "")

    # -- posting ---------------------------------------------------------------------------

    def _ref(self, entry: JournalEntry, items: list[dict[str, Any]]) -> JournalEntryRef:
        first = items[0]
        location = (
            f"{self.base_url}{SERVICE}?$filter=CompanyCode eq '{first['CompanyCode']}' and FiscalYear eq "
            f"'{first['FiscalYear']}' and AccountingDocument eq '{first['AccountingDocument']}'"
        )
        return JournalEntryRef(external_id=entry.external_id, internal_id=document_of(first), location=location)

    def _header(self, entry: JournalEntry, reversal_of: str = "") -> Header:
        return Header(
            reference=document_reference(entry.external_id),
            company_code=entry.subsidiary,
            posting_date=entry.posting_date,
            header_text=entry.memo,
            user=self.user,
            logical_system=self.logical_system,
            reversal_of=reversal_of,
        )

    async def _reversal_of(self, entry: JournalEntry) -> str:
        """The key of the document the entry reverses; SAP reverses a document whole, so
        the entry must mirror it."""
        original = await self._document(document_reference(entry.reverses), entry.subsidiary)
        if original is None:
            raise BusinessError(
                SYSTEM,
                f"entry {entry.reverses}, which {entry.external_id} reverses, is not posted in SAP company code "
                f"{entry.subsidiary}",
                code="NOT_POSTED",
            )
        read = await self._reader.entry(original, external_id=entry.reverses)
        mirrored = Counter((x.account, x.credit is not None, x.amount) for x in read.lines)
        if mirrored != Counter((x.account, x.debit is not None, x.amount) for x in entry.lines):
            raise IntegrationBug(
                SYSTEM,
                f"entry {entry.external_id} does not mirror {entry.reverses}: SAP reverses a document whole",
            )
        return document_of(original[0])

    async def post_journal_entry(self, entry: JournalEntry) -> JournalEntryRef:
        """Post once: mapped and checked first, then looked up by its reference (a retry
        after a lost answer finds the document), then posted through the synchronous service."""
        lines = [] if entry.reverses else await self._wire_lines(entry)
        existing = await self._document(document_reference(entry.external_id), entry.subsidiary)
        if existing is not None:
            return self._ref(entry, existing)
        reversal_of = await self._reversal_of(entry) if entry.reverses else ""
        header = self._header(entry, reversal_of)
        content = envelope([entry_request(header, lines, _now())], message_id(header.reference), _now())
        response = await send(
            self._client,
            SYSTEM,
            "POST",
            SYNC_PATH,
            content=content,
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": SOAP_ACTION},
        )
        if response.status_code >= 400:
            raise classify(response, what=f"journal entry {entry.external_id}")
        confirmations = read_confirmations(response.content)
        if len(confirmations) != 1:
            raise IntegrationBug(SYSTEM, f"SAP confirmed {len(confirmations)} entries for one posted")
        confirmation = confirmations[0]
        if not confirmation.posted:
            raise refusal(
                confirmation.notes,
                what=f"journal entry {entry.external_id}",
                when=f" for {entry.posting_date.isoformat()} (company code {entry.subsidiary})",
            )
        items = await self._document(header.reference, entry.subsidiary)
        if items is None:
            raise IntegrationBug(SYSTEM, f"SAP confirmed document {confirmation.accounting_document} but lists none")
        return self._ref(entry, items)

    async def post_journal_entries(self, entries: list[JournalEntry]) -> list[JournalEntryRef]:
        """Post many entries, each once. Fewer than `bulk_threshold` go one by one through
        the synchronous service; more through the asynchronous bulk service
        (JournalEntryBulkCreationRequest_In), whose answer says only that SAP took the
        message: the adapter reads the documents back by their references until all are
        there or `bulk_wait` has passed. Entries already posted are not sent again. The
        message id derives from the references sent (SAP rejects a reused id, so a resent
        message posts nothing twice); a refusal of an entry is visible only in SAP's
        Message Dashboard, so an entry still missing after the wait is a business error
        for a person, naming the message."""
        if len(entries) < self.bulk_threshold:
            return [await self.post_journal_entry(entry) for entry in entries]
        refs: dict[str, JournalEntryRef] = {}
        pending: list[tuple[JournalEntry, list[WireLine]]] = []
        for entry in entries:
            if entry.reverses:
                raise IntegrationBug(SYSTEM, f"reversal {entry.external_id} goes through post_journal_entry")
            lines = await self._wire_lines(entry)
            existing = await self._document(document_reference(entry.external_id), entry.subsidiary)
            if existing is not None:
                refs[entry.external_id] = self._ref(entry, existing)
            else:
                pending.append((entry, lines))
        if pending:
            references = sorted(document_reference(e.external_id) for e, _ in pending)
            bulk_id = "O2C-BULK-" + hashlib.sha256("|".join(references).encode()).hexdigest()[:26]
            assert len(bulk_id) <= MESSAGE_ID_LIMIT
            requests = [entry_request(self._header(entry), lines, _now()) for entry, lines in pending]
            response = await send(
                self._client,
                SYSTEM,
                "POST",
                BULK_PATH,
                content=envelope(requests, bulk_id, _now()),
                headers={"Content-Type": "text/xml; charset=utf-8"},
            )
            if response.status_code >= 400:
                raise classify(response, what=f"bulk message {bulk_id}")
            await self._await_documents(pending, refs, bulk_id)
        return [refs[entry.external_id] for entry in entries]

    async def _await_documents(
        self, pending: list[tuple[JournalEntry, list[WireLine]]], refs: dict[str, JournalEntryRef], bulk_id: str
    ) -> None:
        deadline = time.monotonic() + self.bulk_wait
        waiting = [entry for entry, _ in pending]
        while True:
            still = []
            for entry in waiting:
                items = await self._document(document_reference(entry.external_id), entry.subsidiary)
                if items is None:
                    still.append(entry)
                else:
                    refs[entry.external_id] = self._ref(entry, items)
            waiting = still
            if not waiting:
                return
            if time.monotonic() >= deadline:
                names = ", ".join(e.external_id for e in waiting[:5]) + (" …" if len(waiting) > 5 else "")
                raise BusinessError(
                    SYSTEM,
                    f"SAP has not posted {len(waiting)} entries of bulk message {bulk_id} after "
                    f"{self.bulk_wait:g} s ({names}): see the Message Dashboard for the reason, fix it and post "
                    "them one by one",
                    code="BULK_NOT_POSTED",
                    fixable=True,
                )
            await asyncio.sleep(min(1.0, self.bulk_wait / 10))

    # -- customers and collection cases ----------------------------------------------------

    async def upsert_customer(self, account: Account, *, subsidiary: str) -> str:
        """The business partner of the billing customer, extended to the company code
        `subsidiary`, created if SAP has none: returns the SAP customer number."""
        return await self.partners.upsert(account, subsidiary)

    async def upsert_collection_case(self, case: CollectionCase) -> CollectionCase:
        raise BusinessError(
            SYSTEM,
            f"collection case {case.external_id} cannot be kept in SAP: o2c keeps collection cases only in "
            "NetSuite (SAP S/4HANA's collections management is not connected)",
            code="not_supported",
            fixable=False,
        )
