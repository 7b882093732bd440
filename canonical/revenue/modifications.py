"""Contract modifications (ASC 606-10-25-10 to 25-13): which paragraph applies, and the
contract's schedules after it: a separate contract, prospective (terminate and create) or
a cumulative catch-up."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from enum import StrEnum
from fractions import Fraction
from math import lcm

from canonical.models import Model, RevenueSchedule
from canonical.money import CurrencyError, Money, largest_remainder
from canonical.revenue.obligations import PerformanceObligation, RevenueContract
from canonical.revenue.schedules import (
    point_in_time_schedule,
    prorated,
    ratable_schedule,
    recognise,
    recognised_before,
    schedule_for,
    truncated,
)


class ModificationTreatment(StrEnum):
    SEPARATE_CONTRACT = "separate_contract"  # 606-10-25-12
    PROSPECTIVE = "prospective"  # 606-10-25-13(a): terminate and create
    CUMULATIVE_CATCH_UP = "cumulative_catch_up"  # 606-10-25-13(b): part of the existing contract


class ContractModification(Model):
    """A change to a contract's scope or price, effective on the `as_of` date given to modify().

    `added` are new obligations and `added_price` the new consideration (negative for a
    price concession). `priced_at_ssp` is finance's judgement that the added price
    reflects the added items' SSP (with appropriate adjustments); when not given, it is
    whether the added price is within `ssp_tolerance` of their total SSP. `new_end`
    moves the end of the existing ratable obligations (an extension or a shortening).
    """

    modification_id: str
    booked_on: date | None = None  # default: the effective date
    added: list[PerformanceObligation] = []
    added_price: Money
    distinct: bool = True  # the added items are distinct from the existing ones
    remaining_distinct: bool = True  # the remaining goods/services are distinct from those transferred
    priced_at_ssp: bool | None = None
    ssp_tolerance: Money | None = None
    new_end: date | None = None
    new_contract_id: str = ""  # for a separate contract; default <contract>-<modification>


def treatment(modification: ContractModification) -> ModificationTreatment:
    """Which ASC 606 paragraph applies to the modification."""
    m = modification
    at_ssp = m.priced_at_ssp
    if at_ssp is None and m.added:
        ssp = Money.zero(m.added_price.currency)
        for o in m.added:
            ssp = ssp + o.ssp
        tolerance = m.ssp_tolerance or Money.zero(m.added_price.currency)
        at_ssp = abs(m.added_price - ssp) <= tolerance
    if m.added and m.distinct and at_ssp and m.new_end is None:
        return ModificationTreatment.SEPARATE_CONTRACT
    if m.remaining_distinct:
        return ModificationTreatment.PROSPECTIVE
    return ModificationTreatment.CUMULATIVE_CATCH_UP


def _integer_weights(weights: Sequence[Fraction]) -> list[int]:
    """Exact rational weights scaled to integers with the same proportions."""
    scale = lcm(*(w.denominator for w in weights)) if weights else 1
    return [int(w * scale) for w in weights]


def _remaining_ssp_weight(schedule: RevenueSchedule, as_of: date, end: date) -> Fraction:
    """The SSP of what remains of an obligation, prorated by days (exact, for weighting)."""
    if schedule.ssp is None:
        return Fraction(schedule.total.minor - recognised_before(schedule, as_of).minor)
    if schedule.method == "point_in_time":
        return Fraction(schedule.ssp.minor)
    return Fraction(schedule.ssp.minor) * (end - as_of).days / (schedule.end - schedule.start).days


def _unmodified_id(schedule: RevenueSchedule) -> str:
    """The id a schedule had before modifications named it: a modification creates
    `<id>.<modification>`, so the next one strips the last suffix instead of adding to it and
    ids stay short however often a contract is modified."""
    if schedule.supersedes and "." in schedule.schedule_id:
        return schedule.schedule_id.rsplit(".", 1)[0]
    return schedule.schedule_id


def modify(
    schedules: Sequence[RevenueSchedule], modification: ContractModification, as_of: date
) -> list[RevenueSchedule]:
    """The contract's schedules after a modification effective on `as_of`.

    - Separate contract (added distinct items priced at SSP): the existing schedules are
      unchanged; the added items get their own schedules under a new contract id, with
      `added_price` allocated across them by relative SSP.
    - Prospective (terminate and create): every schedule with service left on or after
      `as_of` is cut at `as_of` (keeping exactly what it recognised before then; dropped if
      nothing), and the remaining unrecognised consideration plus `added_price` is allocated
      by relative remaining SSP across the remaining obligations and the added ones
      (an existing schedule without an SSP weighs its unrecognised amount), each spread
      over its remaining period. New schedules are `<schedule_id>.<modification_id>` (the
      original id, not the chain of every modification) and name the schedule they
      supersede.
    - Cumulative catch-up (the remaining goods are not distinct): see `_catch_up`.

    Every schedule in the result sums to its total, and the totals sum to the totals
    before plus `added_price`.
    """
    if not schedules:
        raise ValueError("a modification needs the contract's existing schedules")
    first = schedules[0]
    currency = modification.added_price.currency
    for s in schedules:
        if s.contract_id != first.contract_id:
            raise ValueError(f"schedules of two contracts: {first.contract_id} and {s.contract_id}")
        if s.total.currency != currency:
            raise CurrencyError(f"schedule {s.schedule_id} is in {s.total.currency}, the modification in {currency}")
    booked_on = modification.booked_on or as_of
    kind = treatment(modification)
    mid = modification.modification_id

    if kind == ModificationTreatment.SEPARATE_CONTRACT:
        contract_id = modification.new_contract_id or f"{first.contract_id}-{mid}"
        separate = RevenueContract(
            contract_id=contract_id,
            account_id=first.account_id,
            legal_entity=first.legal_entity,
            booked_on=booked_on,
            transaction_price=modification.added_price,
            obligations=modification.added,
        )
        return [*schedules, *recognise(separate)]

    if kind == ModificationTreatment.CUMULATIVE_CATCH_UP:
        return _catch_up(schedules, modification, as_of)

    kept: list[RevenueSchedule] = []
    remaining: list[tuple[RevenueSchedule, date]] = []  # open schedule, its new end
    pool = modification.added_price
    for s in schedules:
        if s.end <= as_of:
            kept.append(s)
            continue
        end = s.end
        if modification.new_end is not None and s.method == "ratable":
            end = modification.new_end
            if end <= as_of:
                raise ValueError(f"new end {end} is not after the modification date {as_of}")
        past = truncated(s, as_of)
        if past is not None:
            kept.append(past)
        pool = pool + (s.total - (past.total if past is not None else Money.zero(currency)))
        remaining.append((s, end))
    if not remaining and not modification.added:
        raise ValueError(f"nothing remains of contract {first.contract_id} on {as_of} to modify prospectively")

    weights = [_remaining_ssp_weight(s, as_of, end) for s, end in remaining]
    weights += [Fraction(o.ssp.minor) for o in modification.added]
    if all(w == 0 for w in weights):
        weights = [Fraction(1)] * len(weights)
    if any(w < 0 for w in weights):
        raise ValueError("a remaining obligation has a negative weight (unrecognised amount below zero)")
    parts = [Money.from_minor(p, currency) for p in largest_remainder(pool.minor, _integer_weights(weights))]

    created: list[RevenueSchedule] = []
    for (s, end), part in zip(remaining, parts, strict=False):
        if s.method == "point_in_time":
            created.append(
                point_in_time_schedule(
                    schedule_id=f"{_unmodified_id(s)}.{mid}",
                    contract_id=s.contract_id,
                    account_id=s.account_id,
                    legal_entity=s.legal_entity,
                    obligation=s.obligation,
                    total=part,
                    delivered_on=s.start,
                    booked_on=booked_on,
                    ssp=s.ssp,
                    supersedes=s.schedule_id,
                )
            )
        else:
            created.append(
                ratable_schedule(
                    schedule_id=f"{_unmodified_id(s)}.{mid}",
                    contract_id=s.contract_id,
                    account_id=s.account_id,
                    legal_entity=s.legal_entity,
                    obligation=s.obligation,
                    total=part,
                    start=as_of,
                    end=end,
                    booked_on=booked_on,
                    ssp=None if s.ssp is None else prorated(s.ssp, (end - as_of).days, (s.end - s.start).days),
                    supersedes=s.schedule_id,
                )
            )
    for o, part in zip(modification.added, parts[len(remaining) :], strict=False):
        created.append(
            schedule_for(
                o,
                part,
                schedule_id=f"{first.contract_id}-{o.obligation_id}.{mid}",
                contract_id=first.contract_id,
                account_id=first.account_id,
                legal_entity=first.legal_entity,
                booked_on=booked_on,
            )
        )
    return [*kept, *created]


def _catch_up(
    schedules: Sequence[RevenueSchedule], modification: ContractModification, as_of: date
) -> list[RevenueSchedule]:
    """ASC 606-10-25-13(b): the modification is part of the existing contract. `added_price`
    is allocated across the open obligations by relative remaining SSP; each open schedule
    keeps its id and what it recognised before `as_of`, its progress (days elapsed / days
    of its possibly moved period) is applied to its new total, and the difference from what
    was recognised is a catch-up recognised in the first line from `as_of`."""
    if modification.added:
        raise ValueError(
            "items that are not distinct change an existing obligation: give the added price "
            "(and a new end) without new obligations"
        )
    currency = modification.added_price.currency
    open_ = [s for s in schedules if s.end > as_of]
    if not open_:
        raise ValueError(f"nothing remains of the contract on {as_of} to catch up on")
    ends = []
    for s in open_:
        end = modification.new_end if modification.new_end is not None and s.method == "ratable" else s.end
        if end <= max(as_of, s.start):
            raise ValueError(f"new end {end} is not after the modification date {as_of}")
        ends.append(end)
    weights = [_remaining_ssp_weight(s, as_of, end) for s, end in zip(open_, ends, strict=False)]
    if all(w == 0 for w in weights):
        weights = [Fraction(1)] * len(weights)
    if any(w < 0 for w in weights):
        raise ValueError("a remaining obligation has a negative weight (unrecognised amount below zero)")
    parts = largest_remainder(modification.added_price.minor, _integer_weights(weights))
    updated: dict[str, RevenueSchedule] = {}
    for s, end, part in zip(open_, ends, parts, strict=False):
        new_total = s.total + Money.from_minor(part, currency)
        if s.method == "point_in_time":
            updated[s.schedule_id] = s.model_copy(
                update={"total": new_total, "lines": [s.lines[0].model_copy(update={"amount": new_total})]}
            )
            continue
        cut = max(as_of, s.start)
        past = truncated(s, cut)
        done = past.total if past is not None else Money.zero(currency)
        to_date, _ = largest_remainder(new_total.minor, [(cut - s.start).days, (end - cut).days])
        future = ratable_schedule(
            schedule_id=s.schedule_id,
            contract_id=s.contract_id,
            account_id=s.account_id,
            legal_entity=s.legal_entity,
            obligation=s.obligation,
            total=new_total - Money.from_minor(to_date, currency),
            start=cut,
            end=end,
        )
        catch_up = Money.from_minor(to_date, currency) - done
        first, *rest = future.lines
        lines = [
            *(past.lines if past is not None else []),
            first.model_copy(update={"amount": first.amount + catch_up}),
            *rest,
        ]
        ssp = None if s.ssp is None else prorated(s.ssp, (end - s.start).days, (s.end - s.start).days)
        updated[s.schedule_id] = s.model_copy(update={"total": new_total, "end": end, "lines": lines, "ssp": ssp})
    return [updated.get(s.schedule_id, s) for s in schedules]
