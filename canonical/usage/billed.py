"""Does billing bill what o2c counted? The comparisons before a usage invoice is released
(billing's meters, the draft's lines) and after it is finalised (the invoice's quantities)."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from canonical.usage.models import Difference, Meter


def quantity_differences(
    counted: Mapping[str, int], billed: Mapping[str, int], *, source: str, meters: Mapping[str, Meter] | None = None
) -> list[Difference]:
    """Every meter where `source` ("billing's meter", "the finalised invoice") holds another
    quantity than o2c counted, in words; a meter missing on one side counts as zero there."""
    differences = []
    for name in sorted(set(counted) | set(billed)):
        ours, theirs = counted.get(name, 0), billed.get(name, 0)
        if theirs == ours:
            continue
        unit = _unit(name, meters)
        gap = theirs - ours
        text = f"{source} holds {theirs:,} {unit}; o2c counted {ours:,} ({abs(gap):,} {'fewer' if gap < 0 else 'more'})"
        differences.append(Difference(meter=name, counted=ours, billed=theirs, text=text))
    return differences


def unbilled_meters(
    counted: Mapping[str, int], lines: Collection[str], *, meters: Mapping[str, Meter] | None = None
) -> list[Difference]:
    """Every meter o2c counted usage on that the draft has no line for: the subscription does
    not bill that meter, so no amount of reporting would put the usage on the invoice."""
    return [
        Difference(
            meter=name,
            counted=quantity,
            billed=None,
            text=f"billing's draft has no line for {name}: the subscription does not bill this meter, "
            f"o2c counted {quantity:,} {_unit(name, meters)}",
        )
        for name, quantity in sorted(counted.items())
        if quantity > 0 and name not in lines
    ]


def _unit(name: str, meters: Mapping[str, Meter] | None) -> str:
    meter = (meters or {}).get(name)
    return meter.unit if meter is not None else name
