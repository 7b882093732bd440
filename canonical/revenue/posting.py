"""Recognised revenue posted to an entity's ledger: one journal entry per entity, month and
currency, Dr deferred revenue / Cr revenue per performance obligation.

Pure and exact. The entry of month M posts, for every line (an obligation, in one currency):

- M's own recognition, less anything already posted for M;
- for every earlier month the entity has posted (or that lies between its postings), what
  the schedules now recognise for it less what was posted for it: a true-up, its own line
  labelled "true-up of <month>". A late amendment or a credit changes a month that may be
  closed in the ERP, so its difference goes into the next open month, never into an edit
  of the month posted.

So after each posting, for every month it covers, what all postings posted for that month
equals what the schedules recognise for it (posted + true-ups = cumulative recognition).
A negative net on a line is booked the other way round (Dr revenue / Cr deferred revenue);
zero lines are left out, and a currency with nothing to post gets no entry.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import date

from pydantic import field_validator

from canonical.journal import ChartOfAccounts, JournalEntry, JournalLine
from canonical.models import Model
from canonical.money import Money


def check_period(period: str) -> str:
    """A calendar month, YYYY-MM."""
    try:
        date.fromisoformat(f"{period}-01")
    except (TypeError, ValueError):
        raise ValueError(f"a period is YYYY-MM, got {period!r}") from None
    if len(period) != 7:
        raise ValueError(f"a period is YYYY-MM, got {period!r}")
    return period


def month_end(period: str) -> date:
    """The last day of the month: the posting date of its revenue entry."""
    first = date.fromisoformat(f"{check_period(period)}-01")
    return first.replace(day=calendar.monthrange(first.year, first.month)[1])


def month_name(period: str) -> str:
    return f"{date.fromisoformat(f'{check_period(period)}-01'):%B %Y}"


def posting_workflow_id(legal_entity: str, period: str) -> str:
    """The business key of an entity-month's posting: a second start lands on the same one."""
    return f"revenue-{legal_entity}-{check_period(period)}"


def posting_external_id(legal_entity: str, period: str, currency: str) -> str:
    """The ERP reference of the entity-month-currency entry (its upsert key)."""
    return f"revenue-{legal_entity}-{check_period(period)}-{currency}"


def parse_posting_external_id(external_id: str) -> tuple[str, str, str] | None:
    """(entity, period, currency) of a revenue posting's external id; None for other entries."""
    if not external_id.startswith("revenue-"):
        return None
    body = external_id[len("revenue-") :]
    parts = body.rsplit("-", 3)
    if len(parts) != 4:
        return None
    entity, year, month, currency = parts
    try:
        period = check_period(f"{year}-{month}")
    except ValueError:
        return None
    if not entity or len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        return None
    return entity, period, currency


class Recognition(Model):
    """What an entity's schedules recognise in one month for one obligation, in one currency."""

    period: str  # YYYY-MM
    obligation: str
    amount: Money

    @field_validator("period")
    @classmethod
    def _month(cls, value: str) -> str:
        return check_period(value)


class RecognitionPage(Model):
    items: list[Recognition]
    next_cursor: str = ""


class PostedLine(Model):
    """One line of a revenue posting as recorded: the amount (revenue credited, signed) the
    entry of month `period` posted for month `recognised_period` and obligation `line_key`."""

    legal_entity: str
    period: str  # the month of the entry
    recognised_period: str  # the month the amount is revenue of: `period`, or earlier for a true-up
    line_key: str  # the performance obligation (product)
    amount: Money
    external_id: str

    @property
    def true_up(self) -> bool:
        return self.recognised_period != self.period

    @property
    def label(self) -> str:
        if self.true_up:
            return f"True-up of {self.recognised_period}: {self.line_key}"
        return f"Revenue recognised in {self.period}: {self.line_key}"


class RevenuePosting(Model):
    """The entry of one entity, month and currency, and the lines it records."""

    legal_entity: str
    period: str
    currency: str
    lines: list[PostedLine]
    entry: JournalEntry

    @property
    def revenue(self) -> Money:
        """Net revenue the entry credits (true-ups included)."""
        result = Money.zero(self.currency)
        for line in self.lines:
            result = result + line.amount
        return result


def _sums(items: Iterable[tuple[str, str, Money]]) -> dict[tuple[str, str, str], Money]:
    """(currency, month, line key) -> amount."""
    sums: dict[tuple[str, str, str], Money] = {}
    for month, key, amount in items:
        slot = (amount.currency, month, key)
        sums[slot] = sums.get(slot, Money.zero(amount.currency)) + amount
    return sums


def covered_months(period: str, posted: Iterable[PostedLine]) -> list[str]:
    """The months the entry of `period` trues up: from the entity's first posted month to its
    last one before `period` (a month in between that was never posted is caught up too)."""
    months = sorted({p.period for p in posted if p.period < period})
    if not months:
        return []
    first, last = months[0], months[-1]
    result, cursor = [], first
    while cursor <= last:
        result.append(cursor)
        cursor = next_month(cursor)
    return result


def build_postings(
    *,
    legal_entity: str,
    subsidiary: str,
    period: str,
    recognised: Iterable[Recognition],
    posted: Iterable[PostedLine],
    chart: ChartOfAccounts,
) -> list[RevenuePosting]:
    """The entries of `period` (one per currency with something to post), from what the
    schedules recognise (for `period` and earlier months) and what earlier postings posted."""
    check_period(period)
    posted = [p for p in posted if p.legal_entity == legal_entity]
    if any(p.period == period for p in posted):
        raise ValueError(f"revenue of {legal_entity} for {period} is posted already")
    months = set(covered_months(period, posted)) | {period}
    now = _sums((r.period, r.obligation, r.amount) for r in recognised if r.period in months)
    before = _sums((p.recognised_period, p.line_key, p.amount) for p in posted if p.recognised_period in months)
    lines: dict[str, list[PostedLine]] = {}
    for slot in sorted(set(now) | set(before)):
        currency, month, key = slot
        zero = Money.zero(currency)
        difference = now.get(slot, zero) - before.get(slot, zero)
        if difference.is_zero:
            continue
        lines.setdefault(currency, []).append(
            PostedLine(
                legal_entity=legal_entity,
                period=period,
                recognised_period=month,
                line_key=key,
                amount=difference,
                external_id=posting_external_id(legal_entity, period, currency),
            )
        )
    result = []
    for currency, found in sorted(lines.items()):
        # The month's own lines first, then the true-ups, oldest month first.
        found.sort(key=lambda x: (x.true_up, x.recognised_period, x.line_key))
        result.append(
            RevenuePosting(
                legal_entity=legal_entity,
                period=period,
                currency=currency,
                lines=found,
                entry=_entry(legal_entity, subsidiary, period, currency, found, chart),
            )
        )
    return result


def _entry(
    legal_entity: str, subsidiary: str, period: str, currency: str, lines: list[PostedLine], chart: ChartOfAccounts
) -> JournalEntry:
    journal: list[JournalLine] = []
    for line in lines:
        amount, forward = abs(line.amount), not line.amount.is_negative
        # Recognition releases deferred revenue into revenue; a negative net gives it back.
        journal.append(
            JournalLine(
                account=chart.deferred_revenue,
                memo=f"{line.label} (deferred revenue released)"
                if forward
                else f"{line.label} (revenue returned to deferred revenue)",
                **{"debit" if forward else "credit": amount},
            )
        )
        journal.append(
            JournalLine(
                account=chart.revenue,
                memo=f"{line.label} (revenue recognised)" if forward else f"{line.label} (revenue reversed)",
                **{"credit" if forward else "debit": amount},
            )
        )
    return JournalEntry(
        external_id=posting_external_id(legal_entity, period, currency),
        subsidiary=subsidiary,
        currency=currency,
        posting_date=month_end(period),
        memo=_memo(legal_entity, period, currency, lines),
        lines=journal,
    )


def _memo(legal_entity: str, period: str, currency: str, lines: list[PostedLine]) -> str:
    own = [x for x in lines if not x.true_up]
    ups = [x for x in lines if x.true_up]
    words = f"Revenue recognised by {legal_entity} in {month_name(period)}"
    if own:
        words += f": {_total(own, currency)} over {len(own)} obligation{'s' * (len(own) != 1)}"
    else:
        words += ": nothing new"
    if ups:
        months = sorted({x.recognised_period for x in ups})
        words += f"; true-ups of {', '.join(months)} after the schedules changed: {_total(ups, currency)}"
    return words


def _total(lines: list[PostedLine], currency: str) -> Money:
    result = Money.zero(currency)
    for line in lines:
        result = result + line.amount
    return result


def posted_by_month(posted: Iterable[PostedLine]) -> dict[tuple[str, str], Money]:
    """(recognised month, currency) -> what all postings posted for that month."""
    result: dict[tuple[str, str], Money] = {}
    for line in posted:
        slot = (line.recognised_period, line.amount.currency)
        result[slot] = result.get(slot, Money.zero(line.amount.currency)) + line.amount
    return result


def previous_month(period: str) -> str:
    first = date.fromisoformat(f"{check_period(period)}-01")
    return f"{first.year - (first.month == 1)}-{(first.month - 2) % 12 + 1:02d}"


def next_month(period: str) -> str:
    first = date.fromisoformat(f"{check_period(period)}-01")
    return f"{first.year + (first.month == 12)}-{first.month % 12 + 1:02d}"


def posting_problems(period: str, *, entity: str, entities: Iterable[str], today: date) -> list[str]:
    """Why a month of an entity cannot be posted: an unknown entity, a malformed period, a
    month that has not ended yet (its revenue is posted once the month is over)."""
    problems = []
    known = list(entities)
    if entity not in known:
        problems.append(f"unknown legal entity {entity!r} (known: {', '.join(known)})")
    try:
        if month_end(period) >= today:
            problems.append(f"{period} has not ended yet: its revenue is posted after {month_end(period)}")
    except ValueError as error:
        problems.append(str(error))
    return problems
