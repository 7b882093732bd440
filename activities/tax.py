from __future__ import annotations

from temporalio import activity

from activities.errors import classified
from activities.inputs import TaxRequest
from adapters.ports import TaxPort
from canonical.models import TaxDocument


class TaxActivities:
    """The tax document code is the idempotency key: the caller derives it from the
    workflow (a quote) or from the invoice (a committed document)."""

    def __init__(self, tax: TaxPort):
        self.tax = tax

    @activity.defn(name="tax.quote")
    @classified
    async def quote(self, request: TaxRequest) -> TaxDocument:
        return await self.tax.quote(**dict(request))

    @activity.defn(name="tax.commit")
    @classified
    async def commit(self, request: TaxRequest) -> TaxDocument:
        return await self.tax.commit(**dict(request))

    @activity.defn(name="tax.void")
    @classified
    async def void(self, code: str) -> TaxDocument | None:
        return await self.tax.void(code=code)
