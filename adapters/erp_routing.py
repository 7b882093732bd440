"""Every legal entity books in its own ERP: one ERP port (and receivables port) in front of
all of them, sending each call to the ERP that holds the ledger it is for.

A call names its ledger by the subsidiary it carries (`LegalEntity.erp_subsidiary`: a
NetSuite subsidiary, a SAP company code); settings refuse two entities on one ledger, so the
subsidiary alone says which ERP. A subsidiary no configured entity names (an entity a
process was handed in its input, as a test or a benchmark does) books in the ERP of the
first configured entity, where every booking went before entities were routed. The few calls that carry only an external id (a lookup
before an undo, a document's open amount) ask the ERPs that can hold it: the ids o2c derives
from workflow ids are unique across ERPs, so at most one answers.

Customer payments, credit memos and refunds are posted only in the ERPs given as
`receivables`; a call for an entity whose ERP is not among them is refused as a business
error naming the entity and its ERP, which parks the process for an operator: never
silently skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from adapters.errors import BusinessError, IntegrationBug
from adapters.netsuite import NetSuiteErp
from adapters.ports import ErpPort, ReceivablesPort
from adapters.sap import SapErp
from canonical.journal import JournalEntry, JournalEntryPage
from canonical.models import Account, CollectionCase, JournalEntryRef, LegalEntity, receivables_refusal
from canonical.money import Money
from canonical.receivables import CreditMemoPosting, CustomerPayment, CustomerRefundPosting

NOT_SUPPORTED = "not_supported"


def routed_erp(
    entities: list[LegalEntity],
    *,
    netsuite_base_url: str,
    netsuite_token: str,
    sap_base_url: str,
    sap_user: str,
    sap_password: str,
    sap_logical_system: str,
    timeout: float,
) -> RoutedErp:
    """Every ERP a legal entity books in, behind one port that routes each call by entity
    (the keywords are settings.Settings.erp_access)."""
    erps: dict[str, ErpPort] = {}
    receivables: dict[str, ReceivablesPort] = {}
    if any(e.erp == "netsuite" for e in entities):
        netsuite = NetSuiteErp(netsuite_base_url, netsuite_token, timeout=timeout)
        erps["netsuite"] = receivables["netsuite"] = netsuite
    company_codes = [e.erp_subsidiary for e in entities if e.erp == "sap"]
    if company_codes:
        erps["sap"] = SapErp(
            sap_base_url,
            sap_user,
            sap_password,
            logical_system=sap_logical_system,
            timeout=timeout,
            company_codes=company_codes,
        )
    return RoutedErp(erps, entities, receivables=receivables)


class RoutedErp:
    def __init__(
        self,
        erps: Mapping[str, ErpPort],
        entities: list[LegalEntity],
        *,
        receivables: Mapping[str, ReceivablesPort] | None = None,
    ):
        missing = sorted({e.erp for e in entities} - set(erps))
        if missing:
            raise ValueError(f"no adapter for the ERP of every legal entity: {', '.join(missing)}")
        self.erps = dict(erps)
        self.receivables = dict(receivables or {})
        self.entities = {e.erp_subsidiary: e for e in entities}
        self.default = entities[0] if entities else None

    # -- which ERP -------------------------------------------------------------------------

    def entity_of(self, subsidiary: str) -> LegalEntity:
        entity = self.entities.get(subsidiary)
        if entity is not None:
            return entity
        if self.default is None:
            raise IntegrationBug("o2c", f"no legal entity books in ledger {subsidiary!r}: none is configured")
        return self.default.model_copy(update={"code": f"(ledger {subsidiary})", "erp_subsidiary": subsidiary})

    def erp_of(self, subsidiary: str) -> ErpPort:
        return self.erps[self.entity_of(subsidiary).erp]

    def receivables_of(self, subsidiary: str) -> ReceivablesPort:
        entity = self.entity_of(subsidiary)
        port = self.receivables.get(entity.erp)
        if port is None:
            raise BusinessError(entity.erp, receivables_refusal(entity), code=NOT_SUPPORTED)
        return port

    # -- ErpPort ---------------------------------------------------------------------------

    async def post_journal_entry(self, entry: JournalEntry) -> JournalEntryRef:
        return await self.erp_of(entry.subsidiary).post_journal_entry(entry)

    async def get_journal_entry(self, external_id: str) -> JournalEntry | None:
        for erp in self.erps.values():
            entry = await erp.get_journal_entry(external_id)
            if entry is not None:
                return entry
        return None

    async def upsert_customer(self, account: Account, *, subsidiary: str) -> str:
        return await self.erp_of(subsidiary).upsert_customer(account, subsidiary=subsidiary)

    async def upsert_collection_case(self, case: CollectionCase) -> CollectionCase:
        return await self.erp_of(case.subsidiary).upsert_collection_case(case)

    async def list_journal_entries_page(
        self, *, subsidiary: str, date_from: date, date_to: date, cursor: str = "", limit: int = 1000
    ) -> JournalEntryPage:
        return await self.erp_of(subsidiary).list_journal_entries_page(
            subsidiary=subsidiary, date_from=date_from, date_to=date_to, cursor=cursor, limit=limit
        )

    # -- ReceivablesPort -------------------------------------------------------------------

    async def receivable_document(self, invoice_id: str, *, subsidiary: str) -> str | None:
        return await self.receivables_of(subsidiary).receivable_document(invoice_id, subsidiary=subsidiary)

    async def receivable_documents(self, invoice_ids: list[str], *, subsidiary: str) -> dict[str, str]:
        return await self.receivables_of(subsidiary).receivable_documents(invoice_ids, subsidiary=subsidiary)

    async def post_customer_payment(self, payment: CustomerPayment) -> str:
        return await self.receivables_of(payment.subsidiary).post_customer_payment(payment)

    async def get_customer_payment(self, external_id: str) -> CustomerPayment | None:
        for port in self.receivables.values():
            payment = await port.get_customer_payment(external_id)
            if payment is not None:
                return payment
        return None

    async def post_credit_memo(self, memo: CreditMemoPosting) -> str:
        return await self.receivables_of(memo.subsidiary).post_credit_memo(memo)

    async def reverse_credit_memo(self, external_id: str) -> None:
        # Only an ERP that posts credit memos can hold one; each removes its own, if any.
        for port in self.receivables.values():
            await port.reverse_credit_memo(external_id)

    async def post_customer_refund(self, refund: CustomerRefundPosting) -> str:
        return await self.receivables_of(refund.subsidiary).post_customer_refund(refund)

    async def open_amount(self, erp_document: str) -> Money | None:
        for port in self.receivables.values():
            amount = await port.open_amount(erp_document)
            if amount is not None:
                return amount
        return None

    async def aclose(self) -> None:
        closed: set[int] = set()
        ports: list[Any] = [*self.erps.values(), *self.receivables.values()]
        for port in ports:
            if id(port) in closed:
                continue
            closed.add(id(port))
            close = getattr(port, "aclose", None)
            if close:
                await close()
