"""Contract modifications (ASC 606-10-25-10 to 25-13): which paragraph applies, and the
contract's schedules after it: a separate contract, prospective (terminate and create) or
a cumulative catch-up."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from enum import StrEnum
from fractions import Fraction
from math import lcm

from canonical.models import Model, RevenueSchedule, RevenueScheduleLine
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

    `remaining_ssp` states, per obligation id, the standalone selling price at the
    modification date of what remains of an existing obligation (ASC 606-10-55-115 weighs
    the remaining and the added items by their SSPs then). An open obligation it does not
    name is weighed by its SSP at inception prorated to what remains: the only SSP o2c
    holds for it, and what every modification booked before the field existed used.
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
    remaining_ssp: dict[str, Money] = {}


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


def _remaining_ssp_weight(schedule: RevenueSchedule, as_of: date, end: date, current: dict[str, Money]) -> Fraction:
    """The SSP of what remains of an obligation: as stated at the modification date, else
    the SSP at inception prorated by days (exact, for weighting)."""
    if schedule.obligation in current:
        return Fraction(current[schedule.obligation].minor)
    if schedule.ssp is None:
        return Fraction(schedule.total.minor - recognised_before(schedule, as_of).minor)
    if schedule.method == "point_in_time":
        return Fraction(schedule.ssp.minor)
    return Fraction(schedule.ssp.minor) * (end - as_of).days / (schedule.end - schedule.start).days


def _check_remaining_ssp(open_: Sequence[RevenueSchedule], modification: ContractModification) -> None:
    """Every stated SSP names exactly one open obligation, in the contract's currency, not below zero."""
    currency = modification.added_price.currency
    for obligation, ssp in modification.remaining_ssp.items():
        matches = [s for s in open_ if s.obligation == obligation]
        if not matches:
            names = ", ".join(sorted({s.obligation for s in open_})) or "none"
            raise ValueError(f"remaining SSP for {obligation}: no such open obligation (open: {names})")
        if len(matches) > 1:
            raise ValueError(f"remaining SSP for {obligation}: {len(matches)} open schedules share that obligation")
        if ssp.currency != currency:
            raise CurrencyError(f"remaining SSP for {obligation} is in {ssp.currency}, the modification in {currency}")
        if ssp.is_negative:
            raise ValueError(f"remaining SSP for {obligation}: a standalone selling price cannot be negative")


def _unmodified_id(schedule: RevenueSchedule) -> str:
    """The id a schedule had before modifications named it: a modification creates
    `<id>.<modification>`, so the next one strips the last suffix instead of adding to it and
    ids stay short however often a contract is modified."""
    if schedule.supersedes and "." in schedule.schedule_id:
        return schedule.schedule_id.rsplit(".", 1)[0]
    return schedule.schedule_id


def modify(
    schedules: Sequence[RevenueSchedule],
    modification: ContractModification,
    as_of: date,
    *,
    reverse_excess: bool = True,
) -> list[RevenueSchedule]:
    """The contract's schedules after a modification effective on `as_of`.

    - Separate contract (added distinct items priced at SSP): the existing schedules are
      unchanged; the added items get their own schedules under a new contract id, with
      `added_price` allocated across them by relative SSP.
    - Prospective (terminate and create): every schedule with service left on or after
      `as_of` is cut at `as_of` (keeping exactly what it recognised before then; dropped if
      nothing), and the remaining unrecognised consideration plus `added_price` is allocated
      by relative SSP at the modification date across the remaining obligations and the
      added ones (`remaining_ssp` where stated, else the SSP at inception prorated to what
      remains; an existing schedule without an SSP weighs its unrecognised amount), each
      spread over its remaining period. When the change takes more than is unrecognised,
      nothing is spread forward and the excess is reversed at once, in a line on `as_of`
      that opens each remaining obligation's new schedule, split by what each had recognised (never
      more); beyond what they recognised it is refused as a refund. (`reverse_excess=False`
      is the arithmetic of modifications booked before that rule: a negative pool spread
      forward. Kept only so that those workflows replay the same steps.) New schedules are `<schedule_id>.<modification_id>` (the
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
    _check_remaining_ssp([s for s in schedules if s.end > as_of], modification)
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
    remaining: list[tuple[RevenueSchedule, date, Money]] = []  # open schedule, its new end, what it recognised
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
        done = past.total if past is not None else Money.zero(currency)
        pool = pool + (s.total - done)
        remaining.append((s, end, done))
    if not remaining and not modification.added:
        raise ValueError(f"nothing remains of contract {first.contract_id} on {as_of} to modify prospectively")

    # A reduction larger than what is still unrecognised leaves nothing to spread forward:
    # the excess reverses revenue the remaining obligations recognised, at once, never
    # below zero for any of them.
    reversal = pool if pool.is_negative and reverse_excess else Money.zero(currency)
    reversals = _reversals(reversal, [done for _, _, done in remaining], first.contract_id, as_of)
    forward = pool - reversal

    current = modification.remaining_ssp
    weights = [_remaining_ssp_weight(s, as_of, end, current) for s, end, _ in remaining]
    if reverse_excess:  # below zero only after an earlier reversal that month: nothing left to weigh
        weights = [max(w, Fraction(0)) for w in weights]
    weights += [Fraction(o.ssp.minor) for o in modification.added]
    if all(w == 0 for w in weights):
        weights = [Fraction(1)] * len(weights)
    if any(w < 0 for w in weights):
        raise ValueError("a remaining obligation has a negative weight (unrecognised amount below zero)")
    parts = [Money.from_minor(p, currency) for p in largest_remainder(forward.minor, _integer_weights(weights))]

    created: list[RevenueSchedule] = []
    for (s, end, _), part, reversed_ in zip(remaining, parts, reversals, strict=False):
        if s.method == "point_in_time":  # not delivered yet: it recognised nothing to reverse
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
                    ssp=current.get(s.obligation, s.ssp),
                    supersedes=s.schedule_id,
                )
            )
            continue
        spread = ratable_schedule(
            schedule_id=f"{_unmodified_id(s)}.{mid}",
            contract_id=s.contract_id,
            account_id=s.account_id,
            legal_entity=s.legal_entity,
            obligation=s.obligation,
            total=part,
            start=as_of,
            end=end,
            booked_on=booked_on,
            ssp=current[s.obligation]
            if s.obligation in current
            else None
            if s.ssp is None
            else prorated(s.ssp, (end - as_of).days, (s.end - s.start).days),
            supersedes=s.schedule_id,
        )
        created.append(_with_reversal(spread, reversed_))
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


def _reversals(reversal: Money, recognised: Sequence[Money], contract_id: str, as_of: date) -> list[Money]:
    """A negative amount split over the obligations by what each recognised (largest
    remainder: no share exceeds what its obligation recognised). Zero shares when there
    is nothing to reverse."""
    currency = reversal.currency
    if not reversal.is_negative:
        return [Money.zero(currency)] * len(recognised)
    held = sum(r.minor for r in recognised)
    if -reversal.minor > held:
        raise ValueError(
            f"the modification of contract {contract_id} on {as_of} takes {-reversal} more than is unrecognised, "
            f"and its open obligations recognised only {Money.from_minor(held, currency)}: "
            "the rest is a refund, not a reversal of revenue"
        )
    return [Money.from_minor(p, currency) for p in largest_remainder(reversal.minor, [r.minor for r in recognised])]


def _with_reversal(schedule: RevenueSchedule, amount: Money) -> RevenueSchedule:
    """The schedule with `amount` recognised at once: a line of its own on the modification
    day, before the spread (a later modification that month finds it wholly recognised)."""
    if amount.is_zero:
        return schedule
    day = schedule.start
    line = RevenueScheduleLine(period=f"{day:%Y-%m}", start=day, end=day + timedelta(days=1), days=1, amount=amount)
    return schedule.model_copy(update={"total": schedule.total + amount, "lines": [line, *schedule.lines]})


def _catch_up(
    schedules: Sequence[RevenueSchedule], modification: ContractModification, as_of: date
) -> list[RevenueSchedule]:
    """ASC 606-10-25-13(b): the modification is part of the existing contract. `added_price`
    is allocated across the open obligations by relative remaining SSP; each open schedule
    keeps its id and what it recognised before `as_of`, its progress (days elapsed / days
    of its possibly moved period) is applied to its new total, and the difference from what
    was recognised is a catch-up recognised in the first line from `as_of`. A new total
    below zero is refused: no obligation recognises less than nothing."""
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
    weights = [
        _remaining_ssp_weight(s, as_of, end, modification.remaining_ssp) for s, end in zip(open_, ends, strict=False)
    ]
    if all(w == 0 for w in weights):
        weights = [Fraction(1)] * len(weights)
    if any(w < 0 for w in weights):
        raise ValueError("a remaining obligation has a negative weight (unrecognised amount below zero)")
    parts = largest_remainder(modification.added_price.minor, _integer_weights(weights))
    updated: dict[str, RevenueSchedule] = {}
    for s, end, part in zip(open_, ends, parts, strict=False):
        new_total = s.total + Money.from_minor(part, currency)
        if new_total.is_negative and part < 0:
            # Progress times a price below zero would recognise less than nothing.
            raise ValueError(
                f"the modification takes obligation {s.obligation} to {new_total}: a price below zero "
                "is a refund, not revenue"
            )
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
