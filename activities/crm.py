from __future__ import annotations

from temporalio import activity

from activities.errors import classified, idempotency_key
from activities.inputs import CreateTask, FlagAccount
from adapters.ports import CrmPort


class CrmActivities:
    def __init__(self, crm: CrmPort):
        self.crm = crm

    @activity.defn(name="crm.flag_account")
    @classified
    async def flag_account(self, request: FlagAccount) -> None:
        await self.crm.flag_account(request.account_id, flag=request.flag, on=request.on)

    @activity.defn(name="crm.create_task")
    @classified
    async def create_task(self, request: CreateTask) -> str:
        return await self.crm.create_task(request.task, idempotency_key=idempotency_key(request.step))
