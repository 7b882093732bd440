from __future__ import annotations

from temporalio import activity

from activities.errors import classified
from activities.inputs import UpsertErpCustomer
from adapters.ports import ErpPort
from canonical.journal import JournalEntry
from canonical.models import CollectionCase, JournalEntryRef


class ErpActivities:
    """The entry's external ID, derived by the workflow, is the ERP's idempotency key."""

    def __init__(self, erp: ErpPort):
        self.erp = erp

    @activity.defn(name="erp.post_journal_entry")
    @classified
    async def post_journal_entry(self, entry: JournalEntry) -> JournalEntryRef:
        return await self.erp.post_journal_entry(entry)

    @activity.defn(name="erp.get_journal_entry")
    @classified
    async def get_journal_entry(self, external_id: str) -> JournalEntry | None:
        return await self.erp.get_journal_entry(external_id)

    @activity.defn(name="erp.upsert_collection_case")
    @classified
    async def upsert_collection_case(self, case: CollectionCase) -> CollectionCase:
        return await self.erp.upsert_collection_case(case)

    @activity.defn(name="erp.upsert_customer")
    @classified
    async def upsert_customer(self, request: UpsertErpCustomer) -> str:
        return await self.erp.upsert_customer(request.account, subsidiary=request.subsidiary)
