"""Review before release: is the draft complete, and is the usage ordinary?

Robust statistics, exact: the baseline of a meter is the median of its last closed periods
and its spread the median absolute deviation (MAD), both Decimal, so that one odd month in
the history neither hides a spike nor invents one. Every finding says what it found in words
with the numbers, for the reviewer who decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import MAX_PREC, ROUND_HALF_UP, Context, Decimal, localcontext

from canonical.money import CurrencyError, Money
from canonical.usage.models import Difference, Finding, FindingRule, Meter, UsagePolicy

# The MAD of a normal distribution is 0.6745 of its standard deviation; scaled by 1.4826 it
# estimates the standard deviation, which is what "noise_mads" counts in.
MAD_SCALE = Decimal("1.4826")
_RATIO_PLACES = Decimal("0.0001")
# Sums, differences, halves and products of whole quantities terminate: with unbounded
# precision they are exact however large the quantities (the default context keeps 28 digits).
_EXACT = Context(prec=MAX_PREC)


def median(values: Sequence[int | Decimal]) -> Decimal:
    """The middle value; the mean of the two middle ones for an even count (exact)."""
    if not values:
        raise ValueError("the median of no values is undefined")
    ordered = sorted(Decimal(v) for v in values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    with localcontext(_EXACT):
        return (ordered[middle - 1] + ordered[middle]) / 2


def mad(values: Sequence[int | Decimal]) -> Decimal:
    """The median absolute deviation from the median (unscaled)."""
    centre = median(values)
    with localcontext(_EXACT):
        deviations = [abs(Decimal(v) - centre) for v in values]
    return median(deviations)


def completeness(
    counted: Mapping[str, int], billed: Mapping[str, int], *, meters: Mapping[str, Meter] | None = None
) -> list[Difference]:
    """Every meter where billing's draft quantity differs from o2c's count, in words.

    A meter missing on one side counts as zero there: a meter o2c counted that the draft
    does not bill is a difference (billed None), and so is a meter the draft bills that o2c
    did not count; a meter with nothing on either side is not. `meters` names the units."""
    differences = []
    for name in sorted(set(counted) | set(billed)):
        ours = counted.get(name, 0)
        theirs = billed.get(name)
        if (theirs or 0) == ours:
            continue
        unit = _unit(name, meters or {})
        if theirs is None:
            text = f"billing's draft has no line for {name}; o2c counted {ours:,} {unit}"
        else:
            gap = theirs - ours
            text = (
                f"billing's draft bills {theirs:,} {unit}; o2c counted {ours:,} "
                f"({abs(gap):,} {'fewer' if gap < 0 else 'more'})"
            )
        differences.append(Difference(meter=name, counted=ours, billed=theirs, text=text))
    return differences


def review_usage(
    *,
    quantities: Mapping[str, int],
    history: Mapping[str, Sequence[int]],
    meters: Mapping[str, Meter],
    segment: str,
    total: Money,
    previous_total: Money | None,
    policy: UsagePolicy,
) -> list[Finding]:
    """Why the invoice must be held, or [] to release it without a person.

    `history` holds each meter's quantities of the last closed periods, oldest first (at most
    policy.history_periods); an empty history with no previous invoice is a first usage invoice.

    Per meter with a history: SPIKE above median x (1 + threshold) (and, with a noise guard,
    more than noise_mads scaled MADs above the median), ZERO_BASELINE for usage on a median
    of zero. A meter without any history on an invoice that is not the first is held as
    FIRST_INVOICE for that meter: its first usage has nothing to be compared with. Then
    TOTAL_JUMP on the invoice total against the previous one."""
    known = {m.event_name: m for m in policy.meters} | dict(meters)
    recent = {name: list(values)[-policy.history_periods :] for name, values in history.items()}
    if previous_total is None and not any(recent.values()):
        return [_first_invoice(quantities, known)]
    findings = []
    for name in sorted(quantities):
        finding = _meter_finding(name, quantities[name], recent.get(name, []), known, segment, policy)
        if finding is not None:
            findings.append(finding)
    if previous_total is not None:
        jump = _total_jump(total, previous_total, policy.total_multiple)
        if jump is not None:
            findings.append(jump)
    return findings


def _meter_finding(
    name: str, quantity: int, history: list[int], known: Mapping[str, Meter], segment: str, policy: UsagePolicy
) -> Finding | None:
    unit = _unit(name, known)
    if not history:
        if quantity <= 0:
            return None
        return Finding(
            rule=FindingRule.FIRST_INVOICE,
            meter=name,
            quantity=quantity,
            text=f"{quantity:,} {unit} is the first usage of {name} on this subscription; no earlier period to compare",
        )
    baseline = median(history)
    spread = mad(history)
    over = _over(len(history))
    if baseline == 0:
        if quantity <= 0:
            return None
        return Finding(
            rule=FindingRule.ZERO_BASELINE,
            meter=name,
            quantity=quantity,
            median=baseline,
            mad=spread,
            text=f"{quantity:,} {unit} against a median of 0 over {over}; usage on a zero baseline is reviewed",
        )
    meter = known.get(name) or Meter(event_name=name, display_name=name)
    limit = 1 + policy.threshold(meter, segment)
    with localcontext(_EXACT):
        if quantity <= baseline * limit:
            return None
        above = quantity - baseline
        noise = policy.noise_mads * MAD_SCALE * spread
    text = ""
    if policy.noise_mads > 0:
        if above <= noise:
            return None
        text = (
            f"; it is {_decimal(above)} above the median, more than {_decimal(policy.noise_mads)} "
            f"scaled MADs ({_decimal(noise.quantize(Decimal('0.1'), rounding=ROUND_HALF_UP))})"
        )
    ratio = Decimal(quantity) / baseline
    return Finding(
        rule=FindingRule.SPIKE,
        meter=name,
        quantity=quantity,
        median=baseline,
        mad=spread,
        ratio=ratio.quantize(_RATIO_PLACES, rounding=ROUND_HALF_UP),
        limit=limit,
        text=(
            f"{quantity:,} {unit} is {_times(ratio, limit)}× the median of {over} ({_decimal(baseline)}); "
            f"the limit is {_limit(limit)}×{text}"
        ),
    )


def _first_invoice(quantities: Mapping[str, int], known: Mapping[str, Meter]) -> Finding:
    used = ", ".join(f"{quantities[name]:,} {_unit(name, known)}" for name in sorted(quantities))
    return Finding(
        rule=FindingRule.FIRST_INVOICE,
        text=f"first usage invoice on this subscription ({used or 'no usage'}); no earlier period to compare",
    )


def _total_jump(total: Money, previous: Money, multiple: Decimal) -> Finding | None:
    if total.currency != previous.currency:
        raise CurrencyError(f"the invoice is in {total.currency}, the previous usage invoice in {previous.currency}")
    with localcontext(_EXACT):
        if total.amount <= previous.amount * multiple:
            return None
    if previous.amount <= 0:
        text = f"the total {total} is above the previous usage invoice of {previous}"
        ratio = None
    else:
        exact = total.amount / previous.amount
        ratio = exact.quantize(_RATIO_PLACES, rounding=ROUND_HALF_UP)
        text = (
            f"the total {total} is {_times(exact, multiple)}× the previous usage invoice ({previous}); "
            f"the limit is {_limit(multiple)}×"
        )
    return Finding(rule=FindingRule.TOTAL_JUMP, text=text, ratio=ratio, limit=multiple)


def _unit(name: str, meters: Mapping[str, Meter]) -> str:
    meter = meters.get(name)
    return meter.unit if meter is not None else name


def _over(count: int) -> str:
    # Usage periods are calendar months (canonical.usage.models).
    return "the last month" if count == 1 else f"the last {count} months"


def _decimal(value: Decimal | int) -> str:
    """A quantity with thousands separators, without trailing zeros: 6,100 or 6,100.5."""
    value = Decimal(value)
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return f"{value.normalize():,f}"


def _times(ratio: Decimal, limit: Decimal) -> str:
    """A ratio to one decimal, or to as many more (up to four) as it takes not to print a
    held ratio as the limit itself: "1.41" rather than "1.4" above a limit of 1.4."""
    for places in ("0.1", "0.01", "0.001", "0.0001"):
        shown = ratio.quantize(Decimal(places), rounding=ROUND_HALF_UP)
        if shown > limit:
            break
    return f"{shown:,f}"


def _limit(limit: Decimal) -> str:
    """A limit as it was set, to at least one decimal: 1.4, 1.25, 2.5, 3.0."""
    text = f"{limit.normalize():f}"
    return text if "." in text else f"{text}.0"
