"""Reconciliation of the revenue o2c posts: each entity-month-currency entry in the ledger
(`revenue-<ENTITY>-<YYYY-MM>-<CUR>`) against o2c's record of what it posted, and what the
schedules recognise for the month against what all postings posted for it.

A difference is a break with its cause in words:

- month not posted yet: the schedules recognise revenue in the month, the ledger holds no
  entry of it and o2c recorded none;
- posted amount differs: the ledger's entry shows another amount than o2c posted (changed
  in the ERP, posted by hand, or posted and never recorded);
- schedule changed after posting: what the schedules now recognise for the month is not what
  was posted for it; the true-up is due in the first month not posted yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from canonical.models import ContractRevenue, Model
from canonical.money import Money
from canonical.revenue.posting import PostedLine, next_month, parse_posting_external_id, posting_external_id

LEDGER_REVENUE = "ledger_revenue:"  # match key prefix, then the entry's external id


def ledger_revenue_key(legal_entity: str, period: str, currency: str) -> str:
    return f"{LEDGER_REVENUE}{posting_external_id(legal_entity, period, currency)}"


def ledger_revenue_key_of(external_id: str) -> str | None:
    """The match key of a revenue posting's entry; None for any other entry."""
    return f"{LEDGER_REVENUE}{external_id}" if parse_posting_external_id(external_id) else None


def _sum(amounts: Iterable[Money], currency: str) -> Money:
    result = Money.zero(currency)
    for amount in amounts:
        if amount.currency == currency:
            result = result + amount
    return result


class MonthFinding(Model):
    """One cause found for an entity-month-currency: the words, and both sides' amounts
    (o2c's side, the schedules or its record; the other side, the ledger or the postings)."""

    external_id: str
    currency: str
    cause: str
    explanation: str
    expected: Money | None
    actual: Money | None


def compare_posted_month(
    key: str,
    *,
    scheduled: Sequence[ContractRevenue],
    ledger: Sequence[Money],
    posted: Sequence[PostedLine],
    tolerance_minor: int = 0,
) -> list[MonthFinding]:
    """The causes under one `ledger_revenue:` key. `scheduled`: the month's recognition per
    contract; `ledger`: the revenue the ledger's entry (entries) of that reference credit;
    `posted`: every line o2c recorded for the entity (any month)."""
    parsed = parse_posting_external_id(key.removeprefix(LEDGER_REVENUE))
    if parsed is None:
        return []
    entity, period, currency = parsed
    external_id = posting_external_id(entity, period, currency)
    mine = [p for p in posted if p.legal_entity == entity and p.amount.currency == currency]
    expected = _sum((r.amount for r in scheduled), currency)
    recorded_lines = [p for p in mine if p.external_id == external_id]
    recorded = _sum((p.amount for p in recorded_lines), currency) if recorded_lines else None
    in_ledger = _sum(ledger, currency) if ledger else None
    posted_for = [p for p in mine if p.recognised_period == period]
    findings: list[MonthFinding] = []

    def beyond(a: Money, b: Money) -> bool:
        return abs((a - b).minor) > tolerance_minor

    if in_ledger is None and recorded is None and not posted_for:
        if not expected.is_zero:
            findings.append(
                MonthFinding(
                    external_id=external_id,
                    currency=currency,
                    cause="month not posted yet",
                    explanation=f"Month not posted yet: o2c's schedules recognise {expected} for {entity} in {period}; "
                    f"the ledger holds no entry {external_id} (o2c revenue post --entity {entity} --period {period}).",
                    expected=expected,
                    actual=None,
                )
            )
        return findings
    if in_ledger != recorded and (in_ledger is None or recorded is None or beyond(in_ledger, recorded)):
        findings.append(
            MonthFinding(
                external_id=external_id,
                currency=currency,
                cause="posted amount differs",
                explanation=f"Posted amount differs: the ledger's {external_id} credits "
                f"{in_ledger if in_ledger is not None else 'nothing'} of revenue; o2c posted "
                f"{recorded if recorded is not None else 'nothing'} under it.",
                expected=recorded,
                actual=in_ledger,
            )
        )
    held = _sum((p.amount for p in posted_for), currency)
    if posted_for and beyond(expected, held):
        last_posted = max(p.period for p in mine)
        due = next_month(max(last_posted, period))
        findings.append(
            MonthFinding(
                external_id=external_id,
                currency=currency,
                cause="schedule changed after posting",
                explanation=f"Schedule changed after posting: true-up due in {due}. o2c's schedules now recognise {expected} "
                f"for {entity} in {period}; {held} was posted for it (a difference of {expected - held}).",
                expected=expected,
                actual=held,
            )
        )
    return findings
