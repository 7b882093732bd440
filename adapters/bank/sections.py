"""What both parsers hand over before a statement is trusted: one account section of a
file, with the lines its errors point at, and the checks every format shares.

A file may hold several account sections (camt.053 `Stmt` elements, BAI2 `03`…`49`
envelopes). Each becomes one BankStatement; the file is refused whole if any one fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from adapters.bank.errors import StatementError
from canonical.cash.models import BankStatement, StatementEntry, StatementFormat
from canonical.money import CurrencyError, Money, minor_unit

FAMILY = {
    StatementFormat.CAMT053_02: "camt053",
    StatementFormat.CAMT053_08: "camt053",
    StatementFormat.BAI2: "bai2",
}


@dataclass
class Section:
    format: StatementFormat
    line: int  # where the section starts
    account: str
    currency: str
    key: str  # camt Stmt/Id; BAI2 "<file id>:<as-of date>"
    created_at: datetime
    opening: Money
    closing: Money
    closing_line: int
    entries: list[StatementEntry] = field(default_factory=list)

    @property
    def statement_id(self) -> str:
        return f"{FAMILY[self.format]}:{self.account}:{self.key}"


def currency(code: str, line: int) -> str:
    try:
        minor_unit(code)
    except CurrencyError:
        raise StatementError(line, f"unknown currency code {code!r}") from None
    return code


def exact(value: Decimal, code: str) -> Money:
    """Money of an amount already checked exact at `code`'s minor unit, in a known currency:
    built without validating it again (a 100,000-entry statement builds 100,000 of them)."""
    return Money.model_construct(amount=value.quantize(Decimal(1).scaleb(-minor_unit(code))), currency=code)


def from_minor(minor: int, code: str) -> Money:
    """Money of a whole number of minor units (BAI2 amounts), in a known currency."""
    return exact(Decimal(minor).scaleb(-minor_unit(code)), code)


def amount(text: str, code: str, line: int, what: str = "amount") -> Money:
    """A decimal amount as camt writes it ("150.00"), exact to the currency's minor unit."""
    currency(code, line)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise StatementError(line, f"{what} {text!r} is not a number") from None
    if not value.is_finite() or value != value.quantize(Decimal(1).scaleb(-minor_unit(code))):
        raise StatementError(line, f"{what} {text!r} has more decimals than {code} allows")
    return exact(value, code)


def iso_date(text: str, line: int, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise StatementError(line, f"{what} {text!r} is not a valid date (YYYY-MM-DD)") from None


def iso_datetime(text: str, line: int, what: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise StatementError(line, f"{what} {text!r} is not a valid date and time") from None


def finish(sections: list[Section], digest: str) -> list[BankStatement]:
    """The checks every format shares, then the statements: each section's balances add up
    (opening + credits - debits = closing); no statement twice in the file; no bank
    reference twice on one account; every credit (a receipt to be) has a bank reference."""
    if not sections:
        raise StatementError(1, "the file holds no account statement")
    seen_statements: dict[str, int] = {}
    seen_references: dict[tuple[str, str], int] = {}
    out: list[BankStatement] = []
    for section in sections:
        sid = section.statement_id
        if sid in seen_statements:
            raise StatementError(
                section.line, f"statement {sid} appears twice in the file (first on line {seen_statements[sid]})"
            )
        seen_statements[sid] = section.line
        credits = Decimal(0)
        debits = Decimal(0)
        for entry in section.entries:
            if entry.amount.currency != section.currency:
                raise StatementError(
                    entry.line,
                    f"entry in {entry.amount.currency} on account {section.account} kept in {section.currency}",
                )
            if entry.credit:
                credits += entry.amount.amount
            else:
                debits += entry.amount.amount
            ref = entry.bank_reference
            if not ref:
                if entry.credit:
                    raise StatementError(entry.line, "credit entry without a bank reference: its receipt has no id")
                continue
            first = seen_references.get((section.account, ref))
            if first is not None:
                raise StatementError(
                    entry.line, f"bank reference {ref!r} appears twice on account {section.account} (line {first})"
                )
            seen_references[(section.account, ref)] = entry.line
        expected = section.opening.amount + credits - debits
        exponent = section.closing.amount
        if expected != section.closing.amount:
            raise StatementError(
                section.closing_line,
                f"balances do not add up on account {section.account}: opening {section.opening.amount} "
                f"+ credits {credits.quantize(exponent)} - debits {debits.quantize(exponent)} = "
                f"{expected.quantize(exponent)}, but the closing balance is "
                f"{section.closing.amount}",
            )
        out.append(
            BankStatement(
                statement_id=sid,
                format=section.format,
                bank_account=section.account,
                currency=section.currency,
                created_at=section.created_at,
                opening=section.opening,
                closing=section.closing,
                entries=section.entries,
                digest=digest,
            )
        )
    return out
