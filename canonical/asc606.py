"""ASC 606 in the steps software can own: obligations, allocation, schedules, modifications,
and the reports finance closes the month with (waterfall, deferred revenue roll-forward).

Pure and exact: Money in minor units, largest-remainder splits, no floats, no clocks.

    schedules = recognise(contract)                         # steps 4 and 5
    schedules = modify(schedules, modification, as_of=...)  # ASC 606-10-25-12/13
    waterfall(schedules)                                    # bookings x recognition months
    deferred_revenue_roll_forward(schedules, billings, first="2026-01", last="2026-03")
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from enum import StrEnum
from fractions import Fraction
from math import lcm

from pydantic import model_validator

from canonical.models import Model, RevenueSchedule
from canonical.money import CurrencyError, Money, largest_remainder
from canonical.revenue import (
    point_in_time_schedule,
    prorated,
    ratable_schedule,
    recognised_before,
    truncated,
)


class ObligationKind(StrEnum):
    SUBSCRIPTION = "subscription"
    PROFESSIONAL_SERVICES = "professional_services"
    USAGE = "usage"


class PerformanceObligation(Model):
    """A distinct promise in a contract, with its standalone selling price (SSP).

    Satisfied over time (ratable over [start, end)) or at a point in time (delivered_on).
    Subscription access is always over time. `direct_price` is consideration that relates
    to this obligation alone (variable usage fees, ASC 606-10-32-40): it is allocated to
    it as is, and the rest of the transaction price is allocated by relative SSP.
    """

    obligation_id: str
    kind: ObligationKind
    ssp: Money
    start: date | None = None
    end: date | None = None  # exclusive
    delivered_on: date | None = None
    direct_price: Money | None = None

    @model_validator(mode="after")
    def _one_pattern(self) -> PerformanceObligation:
        ratable = self.start is not None or self.end is not None
        if ratable == (self.delivered_on is not None):
            raise ValueError(
                f"obligation {self.obligation_id}: give either a service period (start, end) "
                "or a delivery date, not both or neither"
            )
        if ratable and (self.start is None or self.end is None or self.end <= self.start):
            raise ValueError(f"obligation {self.obligation_id}: the service period needs start < end")
        if self.kind == ObligationKind.SUBSCRIPTION and not ratable:
            raise ValueError(f"obligation {self.obligation_id}: subscription access is satisfied over time")
        if self.ssp.is_negative:
            raise ValueError(f"obligation {self.obligation_id}: a standalone selling price cannot be negative")
        if self.direct_price is not None and self.direct_price.currency != self.ssp.currency:
            raise CurrencyError(f"obligation {self.obligation_id}: direct price and SSP in different currencies")
        return self

    @property
    def method(self) -> str:
        return "point_in_time" if self.delivered_on is not None else "ratable"


class RevenueContract(Model):
    """Step 1-3: the contract, its obligations and its (fixed) transaction price."""

    contract_id: str
    account_id: str
    legal_entity: str
    booked_on: date
    transaction_price: Money
    obligations: list[PerformanceObligation]


# -- step 4: allocation ---------------------------------------------------------------


def _integer_weights(weights: Sequence[Fraction]) -> list[int]:
    """Exact rational weights scaled to integers with the same proportions."""
    scale = lcm(*(w.denominator for w in weights)) if weights else 1
    return [int(w * scale) for w in weights]


def allocate(transaction_price: Money, obligations: Sequence[PerformanceObligation]) -> dict[str, Money]:
    """Allocate the transaction price by relative standalone selling price.

    Obligations with a `direct_price` get exactly that; the transaction price is split
    across the others in proportion to their SSPs, largest remainder, so the parts add up
    to the transaction price to the minor unit. Returns obligation_id -> allocated price.
    """
    currency = transaction_price.currency
    ids = [o.obligation_id for o in obligations]
    if len(set(ids)) != len(ids):
        raise ValueError(f"obligation ids must be unique: {ids}")
    for o in obligations:
        if o.ssp.currency != currency:
            raise CurrencyError(f"obligation {o.obligation_id} is in {o.ssp.currency}, the contract in {currency}")
    shared = [o for o in obligations if o.direct_price is None]
    result = {o.obligation_id: o.direct_price for o in obligations if o.direct_price is not None}
    if not shared:
        if not transaction_price.is_zero:
            raise ValueError("a transaction price but no obligation to allocate it to")
    elif all(o.ssp.is_zero for o in shared):
        raise ValueError("cannot allocate by relative SSP when every SSP is zero")
    else:
        for o, part in zip(shared, transaction_price.allocate([o.ssp.amount for o in shared]), strict=False):
            result[o.obligation_id] = part
    return {i: result[i] for i in ids}  # type: ignore[misc]


# -- step 5: schedules ----------------------------------------------------------------


def schedule_for(
    obligation: PerformanceObligation,
    allocated: Money,
    *,
    schedule_id: str,
    contract_id: str,
    account_id: str,
    legal_entity: str,
    booked_on: date | None,
    supersedes: str = "",
    ssp: Money | None = None,
) -> RevenueSchedule:
    common = dict(
        schedule_id=schedule_id,
        contract_id=contract_id,
        account_id=account_id,
        legal_entity=legal_entity,
        obligation=obligation.obligation_id,
        total=allocated,
        booked_on=booked_on,
        ssp=obligation.ssp if ssp is None else ssp,
        supersedes=supersedes,
    )
    if obligation.delivered_on is not None:
        return point_in_time_schedule(delivered_on=obligation.delivered_on, **common)  # type: ignore[arg-type]
    assert obligation.start is not None and obligation.end is not None
    return ratable_schedule(start=obligation.start, end=obligation.end, **common)  # type: ignore[arg-type]


def recognise(contract: RevenueContract) -> list[RevenueSchedule]:
    """One schedule per obligation, each summing exactly to its allocated price."""
    allocation = allocate(contract.transaction_price, contract.obligations)
    return [
        schedule_for(
            o,
            allocation[o.obligation_id],
            schedule_id=f"{contract.contract_id}-{o.obligation_id}",
            contract_id=contract.contract_id,
            account_id=contract.account_id,
            legal_entity=contract.legal_entity,
            booked_on=contract.booked_on,
        )
        for o in contract.obligations
    ]


# -- contract modifications -----------------------------------------------------------


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
        common = dict(
            schedule_id=f"{_unmodified_id(s)}.{mid}",
            contract_id=s.contract_id,
            account_id=s.account_id,
            legal_entity=s.legal_entity,
            obligation=s.obligation,
            total=part,
            booked_on=booked_on,
            supersedes=s.schedule_id,
        )
        if s.method == "point_in_time":
            created.append(point_in_time_schedule(delivered_on=s.start, ssp=s.ssp, **common))  # type: ignore[arg-type]
        else:
            ssp = None if s.ssp is None else prorated(s.ssp, (end - as_of).days, (s.end - s.start).days)
            created.append(ratable_schedule(start=as_of, end=end, ssp=ssp, **common))  # type: ignore[arg-type]
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


# -- reports --------------------------------------------------------------------------


def _period(d: date) -> str:
    return f"{d:%Y-%m}"


def _check_period(p: str) -> str:
    try:
        date.fromisoformat(f"{p}-01")
    except ValueError:
        raise ValueError(f"a period is YYYY-MM, got {p!r}") from None
    return p


class WaterfallRow(Model):
    """The consideration booked in one month, and the months it is recognised in."""

    legal_entity: str
    currency: str
    booked_period: str  # YYYY-MM
    booked: Money
    recognised: dict[str, Money]  # recognition period (YYYY-MM) -> amount, only non-zero months
    remaining: Money  # booked - recognised through the waterfall's last period


class Waterfall(Model):
    periods: list[str]  # the recognition months, in order
    rows: list[WaterfallRow]  # by legal entity, currency, booked period


def waterfall(schedules: Iterable[RevenueSchedule], *, through: str | None = None) -> Waterfall:
    """Bookings by month against the months they are recognised in, per legal entity and
    currency. A schedule is booked in the month of its `booked_on` (else its start); after a
    prospective modification the terminated schedule books only what it recognised and the
    new one books the carried and added consideration (terminate and create). Recognition
    after `through` (YYYY-MM, default: none is cut off) shows as remaining."""
    if through is not None:
        _check_period(through)
    rows: dict[tuple[str, str, str], tuple[Money, dict[str, Money]]] = {}
    periods: set[str] = set()
    for s in schedules:
        currency = s.total.currency
        key = (s.legal_entity, currency, _period(s.booked_on or s.start))
        booked, recognised = rows.get(key, (Money.zero(currency), {}))
        for line in s.lines:
            if through is not None and line.period > through:
                continue
            periods.add(line.period)
            recognised[line.period] = recognised.get(line.period, Money.zero(currency)) + line.amount
        rows[key] = (booked + s.total, recognised)
    result = []
    for (entity, currency, booked_period), (booked, recognised) in sorted(rows.items()):
        done = Money.zero(currency)
        for amount in recognised.values():
            done = done + amount
        result.append(
            WaterfallRow(
                legal_entity=entity,
                currency=currency,
                booked_period=booked_period,
                booked=booked,
                remaining=booked - done,
                recognised={p: a for p, a in sorted(recognised.items()) if not a.is_zero},
            )
        )
    return Waterfall(periods=sorted(periods), rows=result)


class Billing(Model):
    """An amount invoiced against deferred revenue (excluding tax), on its document date."""

    legal_entity: str
    billed_on: date
    amount: Money
    contract_id: str = ""
    document: str = ""


class RollForward(Model):
    """Deferred revenue for one legal entity and currency over the periods first..last.
    A negative balance is revenue recognised ahead of billing (a contract asset)."""

    legal_entity: str
    currency: str
    first: str  # YYYY-MM
    last: str  # YYYY-MM, inclusive
    opening: Money
    billed: Money
    recognised: Money
    closing: Money  # opening + billed - recognised


def deferred_revenue_roll_forward(
    schedules: Iterable[RevenueSchedule], billings: Iterable[Billing], *, first: str, last: str | None = None
) -> list[RollForward]:
    """Opening + billed - recognised = closing, per legal entity and currency, for the
    calendar months first..last (inclusive; last defaults to first). The opening balance is
    everything billed before `first` less everything recognised before it."""
    last = last or first
    _check_period(first), _check_period(last)
    if last < first:
        raise ValueError(f"period {first}..{last} runs backwards")
    # (entity, currency) -> [billed before, billed in, recognised before, recognised in]
    sums: dict[tuple[str, str], list[Money]] = {}

    def add(entity: str, when: str, amount: Money, offset: int) -> None:
        if when > last:  # type: ignore[operator]
            return
        bucket = sums.setdefault((entity, amount.currency), [Money.zero(amount.currency)] * 4)
        i = offset + (0 if when < first else 1)
        bucket[i] = bucket[i] + amount

    for b in billings:
        add(b.legal_entity, _period(b.billed_on), b.amount, 0)
    for s in schedules:
        for line in s.lines:
            add(s.legal_entity, line.period, line.amount, 2)
    result = []
    for (entity, currency), (billed_before, billed, recognised_before_, recognised) in sorted(sums.items()):
        opening = billed_before - recognised_before_
        result.append(
            RollForward(
                legal_entity=entity,
                currency=currency,
                first=first,
                last=last,
                opening=opening,
                billed=billed,
                recognised=recognised,
                closing=opening + billed - recognised,
            )
        )
    return result
