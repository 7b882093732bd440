"""Revenue posting: what the schedules recognise, and what o2c posted, in its own database.
The journal entry itself goes through ErpActivities (its external id is the ERP's key)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.errors import classified
from adapters.ports import RevenuePostingStorePort, RevenueSchedulePort
from canonical.models import Model
from canonical.revenue.posting import PostedLine, RecognitionPage


class ReadRecognition(Model):
    legal_entity: str
    through: str  # YYYY-MM: the month being posted
    cursor: str = ""
    limit: int = 1000


class ReadPostings(Model):
    legal_entity: str
    through: str = ""


class RecordPosting(Model):
    lines: list[PostedLine]


class RevenueActivities:
    def __init__(self, schedules: RevenueSchedulePort, postings: RevenuePostingStorePort):
        self.schedules = schedules
        self.postings = postings

    @activity.defn(name="revenue.recognition")
    @classified
    async def recognition(self, request: ReadRecognition) -> RecognitionPage:
        return await self.schedules.recognition_of_entity(
            legal_entity=request.legal_entity, through=request.through, cursor=request.cursor, limit=request.limit
        )

    @activity.defn(name="revenue.postings")
    @classified
    async def postings_of_entity(self, request: ReadPostings) -> list[PostedLine]:
        return await self.postings.postings_of_entity(request.legal_entity, through=request.through)

    @activity.defn(name="revenue.record")
    @classified
    async def record(self, request: RecordPosting) -> None:
        """The lines are keyed by the entry's reference: recording them again changes nothing."""
        await self.postings.record_posting(request.lines)

    def all(self) -> list[Callable[..., Any]]:
        return [self.recognition, self.postings_of_entity, self.record]
