from __future__ import annotations

from temporalio import activity

from activities.errors import classified
from activities.inputs import ContractSchedules, ReplaceSchedules
from adapters.ports import RevenueSchedulePort
from canonical.models import RevenueSchedule


class ScheduleActivities:
    """Revenue schedules in o2c's own database; the schedule ID is the idempotency key."""

    def __init__(self, schedules: RevenueSchedulePort):
        self.schedules = schedules

    @activity.defn(name="schedules.save")
    @classified
    async def save(self, schedule: RevenueSchedule) -> None:
        await self.schedules.save_schedule(schedule)

    @activity.defn(name="schedules.delete")
    @classified
    async def delete(self, schedule_id: str) -> None:
        await self.schedules.delete_schedule(schedule_id)

    @activity.defn(name="schedules.of_contract")
    @classified
    async def of_contract(self, request: ContractSchedules) -> list[RevenueSchedule]:
        return await self.schedules.schedules_of_contract(request.contract_id, open_on=request.open_on)

    @activity.defn(name="schedules.replace")
    @classified
    async def replace(self, request: ReplaceSchedules) -> None:
        """Save and delete in one transaction; doing it twice leaves the same schedules."""
        await self.schedules.save_schedules(request.save, delete=request.delete)
