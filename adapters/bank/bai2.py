"""BAI2 (the BAI Cash Management Balance Reporting Specifications, version 2) read into
canonical statements.

A file is physical records, one a line, grouped into logical records: a record code, its
comma-separated fields, and `88` continuation records that carry on the record before.
Records other than `16` end with "/". A `16`'s text runs to the end of its record and
has no delimiter; when a `16` ends with "/" the `88` after it carries on its fields, when
it does not its text goes on in the `88` (joined with a space). One trailing "/" after a
text is read as the record's end (unverified: the spec text was not read; both forms are
seen in public samples).

The envelope is checked before any entry is trusted:
- `01` file header (version 2), `02` groups, `03` accounts, `16` details, `49` / `98` /
  `99` trailers, in that nesting; anything after `99`, or a file that ends before it, is
  refused (a truncated file).
- Control totals: `49` = the algebraic sum of the amounts of the account's `03` summary
  and status fields and its `16` amounts (availability distributions of funds types
  S/V/D are not amounts for this); `98` = the sum of its `49`s; `99` = the sum of the `98`s.
- Record counts count physical records, `88`s included: `49` from its `03` to itself,
  `98` from its `02` to itself, `99` the whole file from `01` to `99`. The number of
  accounts (`98`) and of groups (`99`) likewise. (From public samples and PROTOCOLS.md;
  the BAI 2005 text itself unverified.)
- Balances: opening ledger (`010`) + credits (type codes 100-399) - debits (400-699) =
  closing ledger (`015`); a `100` total-credits or `400` total-debits summary, when given,
  must equal the details. Type code 890 (information, no amount) is skipped; any other
  detail code is refused.
- Amounts are whole numbers of the currency's minor unit, signless in `16` (a sign is
  allowed on `03` balances and on control totals); the currency is the `03`'s, else the
  group's, else USD (the BAI default).
- Only group status 1 (update) is read: deletion, correction and test-only groups are
  refused for a person to look at.

One account section (`03`…`49`) is one statement, id "bai2:<account>:<file id>:<as-of
date>". BAI2 has no payer fields: the payer name is read from "ORIG CO NAME:" in the
detail text and the payer's account from "ORIG ID:", where a bank writes ACH originators
so (unverified, bank-specific).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from adapters.bank import references
from adapters.bank.errors import StatementError
from adapters.bank.sections import Section, currency, finish, from_minor
from canonical.cash.models import BankStatement, StatementEntry, StatementFormat

_DIGITS = re.compile(r"[0-9]{1,18}")
_SIGNED = re.compile(r"[+-]?[0-9]{1,18}")
_TYPE_CODE = re.compile(r"[0-9]{3}")
_ORIGINATOR = re.compile(
    r"ORIG CO NAME:\s*(.*?)\s*(?=ORIG ID:|DESC DATE:|CO ENTRY DESCR:|SEC:|IND ID:|IND NAME:|TRACE|$)"
)
_ORIGINATOR_ID = re.compile(r"ORIG ID:\s*(\S+)")
_PLAIN_FUNDS = ("", "0", "1", "2", "Z")
OPENING_LEDGER, CLOSING_LEDGER = "010", "015"
TOTAL_CREDITS, TOTAL_DEBITS = "100", "400"
INFORMATION = "890"


@dataclass
class _Record:
    code: str
    line: int  # first physical line
    physical: int = 1  # physical records, 88s included
    pieces: list[tuple[int, str]] = field(default_factory=list)  # (line, text after "NN,")

    def fields(self) -> list[tuple[int, str]]:
        """(line, field) of a record other than 16: each physical record ends with "/"."""
        out: list[tuple[int, str]] = []
        for line, piece in self.pieces:
            body, slash, after = piece.partition("/")
            if not slash:
                raise StatementError(line, f"record {self.code} does not end with '/' (truncated?)")
            if after.strip():
                raise StatementError(line, f"unexpected text {after.strip()!r} after the end of record {self.code}")
            out += [(line, value.strip()) for value in body.split(",")]
        return out

    def detail(self) -> str:
        """The logical 16 record (fields and text), continuations joined."""
        text = self.pieces[0][1]
        for _, piece in self.pieces[1:]:
            text = text[:-1] + "," + piece if text.endswith("/") else text + " " + piece
        return text[:-1] if text.endswith("/") else text


def _records(data: bytes) -> list[_Record]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise StatementError(line, "the file is not text (invalid UTF-8)") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    records: list[_Record] = []
    for number, raw in enumerate(lines, start=1):
        physical = raw.rstrip("\r").rstrip()
        if not physical:
            raise StatementError(number, "empty record")
        code, comma, rest = physical.partition(",")
        if not comma and physical.endswith("/"):
            code, rest = physical[:-1], "/"
        if len(code) != 2 or not code.isdigit():
            raise StatementError(number, f"{physical[:20]!r} does not start with a BAI2 record code")
        if code == "88":
            if not records:
                raise StatementError(number, "continuation record (88) with no record to continue")
            records[-1].pieces.append((number, rest))
            records[-1].physical += 1
        else:
            records.append(_Record(code, number, 1, [(number, rest)]))
    if not records:
        raise StatementError(1, "empty file")
    return records


def _number(value: str, line: int, what: str, *, signed: bool = False) -> int:
    if not (_SIGNED if signed else _DIGITS).fullmatch(value):
        kind = "a whole number" if signed else "an unsigned whole number"
        raise StatementError(line, f"{what} {value!r} is not {kind} (BAI2 amounts are in minor units)")
    return int(value)


def _yymmdd(value: str, line: int, what: str) -> date:
    if len(value) == 6 and value.isdigit():
        try:
            return date(2000 + int(value[:2]), int(value[2:4]), int(value[4:]))
        except ValueError:
            pass
    raise StatementError(line, f"{what} {value!r} is not a valid date (YYMMDD)")


def _hhmm(value: str, line: int, what: str) -> timedelta:
    """Military time; 2400 and 9999 both mean the end of the day."""
    if value in ("2400", "9999"):
        return timedelta(days=1)
    if len(value) == 4 and value.isdigit() and int(value[:2]) < 24 and int(value[2:]) < 60:
        return timedelta(hours=int(value[:2]), minutes=int(value[2:]))
    raise StatementError(line, f"{what} {value!r} is not a valid time (HHMM)")


def _funds(values: list[str], at: int, line: int) -> tuple[int, date | None]:
    """Skip a funds type and its extra fields starting at `values[at]`; the index after
    them and, for type V, the value date."""
    kind = values[at] if at < len(values) else ""
    at += 1
    if kind in _PLAIN_FUNDS:
        return at, None
    if kind == "S":  # immediate, one-day, two-or-more-day availability
        for value in values[at : at + 3]:
            if value:
                _number(value, line, "availability amount", signed=True)
        return at + 3, None
    if kind == "V":  # value date, value time
        day = _yymmdd(values[at] if at < len(values) else "", line, "value date")
        if at + 1 < len(values) and values[at + 1]:
            _hhmm(values[at + 1], line, "value time")
        return at + 2, day
    if kind == "D":  # n distributions of (days, amount)
        count = _number(values[at] if at < len(values) else "", line, "number of distributions")
        if at + 1 + 2 * count > len(values):
            raise StatementError(line, f"funds type D announces {count} distributions the record does not hold")
        for value in values[at + 1 : at + 1 + 2 * count]:
            _number(value, line, "distribution field", signed=True)
        return at + 1 + 2 * count, None
    raise StatementError(line, f"funds type {kind!r} is not one of 0, 1, 2, Z, S, V, D")


@dataclass
class _Group:
    line: int
    as_of: date
    currency: str


class _Reader:
    def __init__(self, records: list[_Record]):
        self.records = records
        self.at = 0
        self.sections: list[Section] = []

    def next(self, expected: str) -> _Record:
        if self.at >= len(self.records):
            last = self.records[-1]
            raise StatementError(
                last.line + last.physical - 1, f"the file ends before its {_NAMES[expected]} ({expected}): truncated?"
            )
        record = self.records[self.at]
        self.at += 1
        return record

    def peek(self) -> str:
        return self.records[self.at].code if self.at < len(self.records) else ""

    def unexpected(self, record: _Record, where: str) -> StatementError:
        name = _NAMES.get(record.code, "unknown record")
        return StatementError(record.line, f"{name} ({record.code}) where {where} was expected")

    def read(self) -> list[Section]:
        header = self.next("01")
        if header.code != "01":
            raise self.unexpected(header, "the file header (01)")
        f = header.fields()
        values = [v for _, v in f] + [""] * 8
        if values[7] != "2":
            raise StatementError(header.line, f"BAI version {values[7] or '(none)'!r} is not 2")
        created_day = _yymmdd(values[2], header.line, "file creation date")
        created_at = datetime.combine(created_day, time()) + _hhmm(values[3], header.line, "file creation time")
        file_id = values[4]
        if not file_id:
            raise StatementError(header.line, "the file header has no file identification number")
        physical = header.physical
        groups = 0
        total = 0
        while self.peek() == "02":
            group_total, group_physical = self.group(file_id, created_at)
            total += group_total
            physical += group_physical
            groups += 1
        trailer = self.next("99")
        if trailer.code != "99":
            raise self.unexpected(trailer, "a group header (02) or the file trailer (99)")
        physical += trailer.physical
        values = [v for _, v in trailer.fields()] + [""] * 3
        self.control(trailer, values[0], total, "file")
        self.count(trailer, values[1], groups, "groups")
        self.count(trailer, values[2], physical, "records")
        if self.at < len(self.records):
            extra = self.records[self.at]
            raise StatementError(extra.line, f"record {extra.code} after the file trailer (99)")
        if groups == 0:
            raise StatementError(trailer.line, "the file holds no group (02)")
        return self.sections

    def group(self, file_id: str, created_at: datetime) -> tuple[int, int]:
        header = self.next("02")
        values = [v for _, v in header.fields()] + [""] * 7
        if values[2] != "1":
            raise StatementError(
                header.line,
                f"group status {values[2] or '(none)'!r}: only 1 (update) is applied; "
                "deletion (2), correction (3) and test-only (4) groups need a person",
            )
        as_of = _yymmdd(values[3], header.line, "as-of date")
        if values[4]:
            _hhmm(values[4], header.line, "as-of time")
        group = _Group(header.line, as_of, currency(values[5], header.line) if values[5] else "USD")
        physical = header.physical
        accounts = 0
        total = 0
        while self.peek() == "03":
            account_total, account_physical = self.account(group, file_id, created_at)
            total += account_total
            physical += account_physical
            accounts += 1
        trailer = self.next("98")
        if trailer.code != "98":
            raise self.unexpected(trailer, "an account (03) or the group trailer (98)")
        physical += trailer.physical
        values = [v for _, v in trailer.fields()] + [""] * 3
        self.control(trailer, values[0], total, "group")
        self.count(trailer, values[1], accounts, "accounts")
        self.count(trailer, values[2], physical, "records")
        return total, physical

    def account(self, group: _Group, file_id: str, created_at: datetime) -> tuple[int, int]:
        header = self.next("03")
        fields = header.fields()
        values = [v for _, v in fields]
        lines = [line for line, _ in fields]
        if len(values) < 2 or not values[0]:
            raise StatementError(header.line, "account record (03) without an account number")
        account = values[0]
        code = currency(values[1], header.line) if values[1] else group.currency
        total = 0
        summaries: dict[str, tuple[int, int | None, int]] = {}  # type code -> amount, item count, line
        at = 2
        while at < len(values):
            line = lines[at]
            type_code = values[at]
            amount_text = values[at + 1] if at + 1 < len(values) else ""
            count_text = values[at + 2] if at + 2 < len(values) else ""
            if not type_code:
                if amount_text or count_text:
                    raise StatementError(line, "summary amount without a type code")
                at, _ = _funds(values, at + 3, line)
                continue
            if not _TYPE_CODE.fullmatch(type_code):
                raise StatementError(line, f"type code {type_code!r} is not three digits")
            amount = _number(amount_text, line, f"amount of {type_code}", signed=True) if amount_text else 0
            count = _number(count_text, line, f"item count of {type_code}") if count_text else None
            if type_code in summaries:
                raise StatementError(line, f"type code {type_code} given twice on account {account}")
            summaries[type_code] = (amount, count, line)
            total += amount
            at, _ = _funds(values, at + 3, line)
        entries: list[StatementEntry] = []
        physical = header.physical
        credits = debits = 0
        credit_items = debit_items = 0
        while self.peek() == "16":
            record = self.next("16")
            physical += record.physical
            entry = self.detail(record, code, group.as_of)
            if entry is None:
                continue
            entries.append(entry)
            total += entry.amount.minor
            if entry.credit:
                credits += entry.amount.minor
                credit_items += 1
            else:
                debits += entry.amount.minor
                debit_items += 1
        trailer = self.next("49")
        if trailer.code != "49":
            raise self.unexpected(trailer, "a transaction detail (16) or the account trailer (49)")
        physical += trailer.physical
        trailer_values = [v for _, v in trailer.fields()] + [""] * 2
        self.control(trailer, trailer_values[0], total, f"account {account}")
        self.count(trailer, trailer_values[1], physical, "records")
        for type_code, minor, items in ((TOTAL_CREDITS, credits, credit_items), (TOTAL_DEBITS, debits, debit_items)):
            if type_code in summaries:
                stated, stated_items, line = summaries[type_code]
                side = "credits" if type_code == TOTAL_CREDITS else "debits"
                if stated != minor:
                    raise StatementError(line, f"total {side} ({type_code}) {stated}, the details sum to {minor}")
                if stated_items is not None and stated_items != items:
                    raise StatementError(line, f"total {side} ({type_code}) counts {stated_items} items, not {items}")
        for type_code in (OPENING_LEDGER, CLOSING_LEDGER):
            if type_code not in summaries:
                which = "opening" if type_code == OPENING_LEDGER else "closing"
                raise StatementError(header.line, f"account {account} has no {which} ledger balance ({type_code})")
        opening, _, _ = summaries[OPENING_LEDGER]
        closing, _, closing_line = summaries[CLOSING_LEDGER]
        self.sections.append(
            Section(
                format=StatementFormat.BAI2,
                line=header.line,
                account=account,
                currency=code,
                key=f"{file_id}:{group.as_of.isoformat()}",
                created_at=created_at,
                opening=from_minor(opening, code),
                closing=from_minor(closing, code),
                closing_line=closing_line,
                entries=entries,
            )
        )
        return total, physical

    def detail(self, record: _Record, code: str, as_of: date) -> StatementEntry | None:
        line = record.line
        values = record.detail().split(",")
        type_code = values[0].strip()
        if not _TYPE_CODE.fullmatch(type_code):
            raise StatementError(line, f"type code {type_code!r} is not three digits")
        number = int(type_code)
        amount_text = values[1].strip() if len(values) > 1 else ""
        if type_code == INFORMATION and not amount_text:
            return None
        if not 100 <= number <= 699:
            raise StatementError(line, f"type code {type_code} is neither a credit (100-399) nor a debit (400-699)")
        if not amount_text:
            raise StatementError(line, f"detail {type_code} has no amount")
        minor = _number(amount_text, line, "amount")
        at, value_date = _funds(values, 2, line)
        bank_reference = values[at].strip() if at < len(values) else ""
        customer_reference = values[at + 1].strip() if at + 1 < len(values) else ""
        text = ",".join(values[at + 2 :]).strip()
        originator = _ORIGINATOR.search(text)
        originator_id = _ORIGINATOR_ID.search(text)
        return StatementEntry(
            line=line,
            amount=from_minor(minor, code),
            credit=number < 400,
            bank_reference=bank_reference,
            booked_on=as_of,
            value_date=value_date or as_of,
            type_code=type_code,
            payer_name=originator.group(1) if originator else "",
            payer_account=originator_id.group(1) if originator_id else "",
            references=references.collect([], [customer_reference], [text]),
            remittance_text=text,
        )

    @staticmethod
    def control(record: _Record, stated: str, computed: int, what: str) -> None:
        value = _number(stated, record.line, f"{what} control total", signed=True)
        if value != computed:
            raise StatementError(
                record.line, f"{what} control total {value} does not match the amounts in the file ({computed})"
            )

    @staticmethod
    def count(record: _Record, stated: str, computed: int, what: str) -> None:
        value = _number(stated, record.line, f"number of {what}")
        if value != computed:
            name = _NAMES[record.code]
            raise StatementError(record.line, f"{name} ({record.code}) counts {value} {what}, the file has {computed}")


_NAMES = {
    "01": "file header",
    "02": "group header",
    "03": "account identifier",
    "16": "transaction detail",
    "49": "account trailer",
    "88": "continuation",
    "98": "group trailer",
    "99": "file trailer",
}


def parse(data: bytes, digest: str = "") -> list[BankStatement]:
    """Every account section of a BAI2 file, validated; StatementError otherwise."""
    return finish(_Reader(_records(data)).read(), digest)
