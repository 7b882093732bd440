"""A small, honest subset of SuiteQL for the NetSuite stand-in: enough to list journal
entries and their accounting lines page by page, refusing everything else clearly.

    SELECT <projection>, ... FROM <table> [<alias>]
      [WHERE <predicate> AND <predicate> ...]
      [ORDER BY <column> [ASC|DESC]]

Projections: `*`, a column (optionally alias-qualified), `BUILTIN.DF(column)` (the
display value: a currency's code), `TO_CHAR(column, 'YYYY-MM-DD')`; each with an
optional `AS name`. Predicates: `column = | <> | != | < | <= | > | >= literal`,
`column IN (literal, ...)`, `column IS [NOT] NULL`. Literals: numbers, 'strings' and
`TO_DATE('YYYY-MM-DD', 'YYYY-MM-DD')`. No OR, joins, functions in predicates or
subqueries.

Two virtual tables over the stored journal entries:

- `transaction`: one row per journal entry (id, tranid, externalid, trandate, type =
  'Journal', subsidiary, currency, memo and o2c's custom body fields);
- `transactionaccountingline`: one row per line (transaction = the entry's id,
  transactionline, account, debit, credit, amount = debit - credit).

Predicates on the indexed columns (subsidiary -> scope, trandate -> day, id or
transaction -> num) are pushed down to SQL, the others are evaluated here; a query whose
predicates and order all push down pages in SQL, so its cost follows the page, not the
number of entries.

Unverified details: how NetSuite names an unaliased BUILTIN.DF/TO_CHAR column (we use
the column's name), the raw date format (the user's date preference; we answer M/D/YYYY,
NetSuite's US default), the internal ids of currencies (account-specific; we number the
common ones), and NULL ordering (Oracle's default: last ascending, first descending).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sandbox.netsuite import SYSTEM
from sandbox.store import Condition, Tx

JOURNAL_TYPE = "Journal"

# Internal ids of currency records (unverified: an account numbers its own; USD = 1 is
# the usual base currency of a US account).
CURRENCY_IDS = {"USD": 1, "GBP": 2, "CAD": 3, "EUR": 4, "JPY": 5, "AUD": 6, "CHF": 7, "SEK": 8}
CURRENCY_CODES = {v: k for k, v in CURRENCY_IDS.items()}

TABLES: dict[str, tuple[str, ...]] = {
    "transaction": (
        "id",
        "tranid",
        "externalid",
        "trandate",
        "type",
        "subsidiary",
        "currency",
        "memo",
        "custbody_o2c_invoice",
        "custbody_o2c_contract",
        "custbody_o2c_reverses",
    ),
    "transactionaccountingline": ("transaction", "transactionline", "account", "debit", "credit", "amount"),
}


class SuiteQLError(Exception):
    """A query outside the supported subset, or an invalid one: answered as a 400."""


# -- parsing -----------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<string>'(?:[^']|'')*')
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<op><=|>=|<>|!=|=|<|>)
  | (?P<punct>[(),.*\-])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
)""",
    re.VERBOSE,
)

# Reserved words: never taken for a table alias, and named when they appear where the
# subset has no place for them.
_KEYWORDS = {
    "select",
    "from",
    "where",
    "and",
    "or",
    "order",
    "by",
    "asc",
    "desc",
    "as",
    "in",
    "is",
    "not",
    "null",
    "join",
    "group",
    "having",
    "union",
    "minus",
    "intersect",
    "distinct",
    "on",
    "left",
    "right",
    "inner",
    "outer",
    "full",
    "cross",
    "natural",
    "fetch",
    "offset",
    "limit",
    "with",
    "connect",
    "start",
}


@dataclass(frozen=True)
class Token:
    kind: str  # string, number, op, punct, name
    text: str

    @property
    def word(self) -> str:
        return self.text.lower() if self.kind == "name" else ""


@dataclass(frozen=True)
class Ref:
    qualifier: str  # "" when unqualified
    name: str


@dataclass(frozen=True)
class Projection:
    function: str  # "", "df" (BUILTIN.DF) or "to_char"
    ref: Ref | None  # None for *
    name: str  # the output column


@dataclass(frozen=True)
class Predicate:
    ref: Ref
    op: str  # = != < <= > >= in "is null" "is not null"
    value: Any = None  # a literal, or a tuple of them for IN


@dataclass(frozen=True)
class Query:
    table: str
    alias: str
    projections: tuple[Projection, ...]
    where: tuple[Predicate, ...]
    order: tuple[Ref, bool] | None  # (column, descending)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    text = text.rstrip().rstrip(";")
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise SuiteQLError(f"Unexpected character {text[position:].lstrip()[:1]!r} at position {position}.")
        kind = match.lastgroup or ""
        tokens.append(Token(kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self, ahead: int = 0) -> Token | None:
        index = self.i + ahead
        return self.tokens[index] if index < len(self.tokens) else None

    def next(self, expected: str = "") -> Token:
        token = self.peek()
        if token is None:
            raise SuiteQLError(f"Unexpected end of query{f': expected {expected}' if expected else ''}.")
        self.i += 1
        return token

    def accept_word(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.word == word:
            self.i += 1
            return True
        return False

    def expect_word(self, word: str) -> None:
        token = self.next(word.upper())
        if token.word != word:
            raise SuiteQLError(f"Expected {word.upper()}, found {token.text!r}.")

    def expect_punct(self, text: str) -> None:
        token = self.next(repr(text))
        if token.text != text:
            raise SuiteQLError(f"Expected {text!r}, found {token.text!r}.")

    def identifier(self, what: str) -> str:
        token = self.next(what)
        if token.kind != "name" or token.word in _KEYWORDS:
            raise SuiteQLError(f"Expected {what}, found {token.text!r}.")
        return token.text.lower()

    # SELECT list --------------------------------------------------------------------

    def ref(self) -> Ref:
        first = self.identifier("a column")
        if self.peek() is not None and self.peek().text == ".":
            self.i += 1
            return Ref(first, self.identifier("a column"))
        return Ref("", first)

    def projection(self) -> Projection:
        token = self.peek()
        if token is not None and token.text == "*":
            self.i += 1
            return Projection("", None, "*")
        if token is not None and token.word == "builtin":
            self.i += 1
            self.expect_punct(".")
            function = self.identifier("a BUILTIN function")
            if function != "df":
                raise SuiteQLError(f"BUILTIN.{function.upper()} is not supported; only BUILTIN.DF is.")
            self.expect_punct("(")
            ref = self.ref()
            self.expect_punct(")")
            projection = Projection("df", ref, ref.name)
        elif token is not None and token.word == "to_char":
            self.i += 1
            self.expect_punct("(")
            ref = self.ref()
            self.expect_punct(",")
            self._date_format("TO_CHAR")
            self.expect_punct(")")
            projection = Projection("to_char", ref, ref.name)
        elif token is not None and token.kind == "name" and self.peek(1) is not None and self.peek(1).text == "(":
            raise SuiteQLError(f"Function {token.text.upper()} is not supported here.")
        else:
            ref = self.ref()
            projection = Projection("", ref, ref.name)
        if self.accept_word("as"):
            projection = Projection(projection.function, projection.ref, self.identifier("a column alias"))
        return projection

    def _date_format(self, function: str) -> None:
        token = self.next("a format")
        if token.kind != "string" or token.text[1:-1].upper() != "YYYY-MM-DD":
            raise SuiteQLError(f"{function} supports only the format 'YYYY-MM-DD', not {token.text}.")

    # WHERE --------------------------------------------------------------------------

    def literal(self) -> Any:
        token = self.next("a value")
        if token.kind == "string":
            return token.text[1:-1].replace("''", "'")
        if token.kind == "number":
            return Decimal(token.text)
        if token.text == "-":
            number = self.next("a number")
            if number.kind != "number":
                raise SuiteQLError(f"Expected a number after '-', found {number.text!r}.")
            return -Decimal(number.text)
        if token.word == "to_date":
            self.expect_punct("(")
            value = self.next("a date")
            if value.kind != "string":
                raise SuiteQLError(f"TO_DATE takes a quoted date, not {value.text!r}.")
            self.expect_punct(",")
            self._date_format("TO_DATE")
            self.expect_punct(")")
            try:
                return date.fromisoformat(value.text[1:-1])
            except ValueError:
                raise SuiteQLError(f"Invalid date {value.text} for the format 'YYYY-MM-DD'.") from None
        raise SuiteQLError(f"Expected a number, a 'string' or TO_DATE(...), found {token.text!r}.")

    def predicate(self) -> Predicate:
        if self.peek() is not None and self.peek().text == "(":
            raise SuiteQLError("Parentheses in WHERE are not supported: join conditions with AND only.")
        ref = self.ref()
        token = self.next("an operator")
        if token.kind == "op":
            return Predicate(ref, "!=" if token.text == "<>" else token.text, self.literal())
        if token.word == "in":
            self.expect_punct("(")
            values = [self.literal()]
            while self.peek() is not None and self.peek().text == ",":
                self.i += 1
                values.append(self.literal())
            self.expect_punct(")")
            return Predicate(ref, "in", tuple(values))
        if token.word == "is":
            negated = self.accept_word("not")
            self.expect_word("null")
            return Predicate(ref, "is not null" if negated else "is null")
        if token.word == "not":
            raise SuiteQLError("NOT IN / NOT LIKE are not supported.")
        raise SuiteQLError(f"Unsupported operator {token.text!r} after {ref.name}.")

    def query(self) -> Query:
        self.expect_word("select")
        if self.peek() is not None and self.peek().word in ("distinct", "top"):
            raise SuiteQLError(f"SELECT {self.peek().text.upper()} is not supported.")
        projections = [self.projection()]
        while self.peek() is not None and self.peek().text == ",":
            self.i += 1
            projections.append(self.projection())
        self.expect_word("from")
        table = self.identifier("a table")
        if table not in TABLES:
            raise SuiteQLError(f"Record '{table}' was not found (this sandbox knows {', '.join(sorted(TABLES))}).")
        alias = table
        token = self.peek()
        if token is not None and token.kind == "name" and token.word not in _KEYWORDS:
            alias = self.identifier("an alias")
        where: list[Predicate] = []
        if self.accept_word("where"):
            where.append(self.predicate())
            while self.accept_word("and"):
                where.append(self.predicate())
        order = None
        if self.accept_word("order"):
            self.expect_word("by")
            column = self.ref()
            descending = False
            if self.accept_word("desc"):
                descending = True
            else:
                self.accept_word("asc")
            if self.peek() is not None and self.peek().text == ",":
                raise SuiteQLError("ORDER BY supports one column here.")
            order = (column, descending)
        rest = self.peek()
        if rest is not None:
            if rest.word in ("or",):
                raise SuiteQLError("OR is not supported: join conditions with AND only.")
            if rest.word in _KEYWORDS:
                raise SuiteQLError(f"{rest.text.upper()} is not supported in this subset of SuiteQL.")
            raise SuiteQLError(f"Unexpected {rest.text!r} after the end of the query.")
        parsed = Query(table, alias, tuple(projections), tuple(where), order)
        for ref in _refs(parsed):
            _check(parsed, ref)
        return parsed


def _refs(query: Query) -> Iterator[Ref]:
    for projection in query.projections:
        if projection.ref is not None:
            yield projection.ref
    for predicate in query.where:
        yield predicate.ref
    if query.order is not None:
        yield query.order[0]


def _check(query: Query, ref: Ref) -> None:
    if ref.qualifier and ref.qualifier not in (query.alias, query.table):
        raise SuiteQLError(f"Unknown table alias {ref.qualifier!r} in {ref.qualifier}.{ref.name}.")
    if ref.name not in TABLES[query.table]:
        raise SuiteQLError(f"Field '{ref.name}' for record '{query.table}' was not found.")


def parse(text: str) -> Query:
    if not isinstance(text, str) or not text.strip():
        raise SuiteQLError('The request body needs a query in "q".')
    return _Parser(text).query()


# -- rows ----------------------------------------------------------------------------------


def _id_value(raw: Any) -> Any:
    text = "" if raw is None else str(raw)
    return int(text) if text.isdigit() else (text or None)


def _text(raw: Any) -> str | None:
    return None if raw in (None, "") else str(raw)


def _currency_id(record: dict[str, Any]) -> Any:
    ref = record.get("currency") or {}
    if ref.get("id") not in (None, ""):
        return _id_value(ref["id"])
    code = ref.get("refName") or ""
    return CURRENCY_IDS.get(code, code or None)


def transaction_row(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": _id_value(record.get("id")),
        "tranid": _text(record.get("tranId")),
        "externalid": _text(record.get("externalId")),
        "trandate": date.fromisoformat(record["tranDate"]) if record.get("tranDate") else None,
        "type": JOURNAL_TYPE,
        "subsidiary": _id_value((record.get("subsidiary") or {}).get("id")),
        "currency": _currency_id(record),
        "memo": _text(record.get("memo")),
        "custbody_o2c_invoice": _text(record.get("custbody_o2c_invoice")),
        "custbody_o2c_contract": _text(record.get("custbody_o2c_contract")),
        "custbody_o2c_reverses": _text(record.get("custbody_o2c_reverses")),
    }


def accounting_line_rows(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    # Amounts in transactionaccountingline are in the subsidiary's base currency; the
    # sandbox keeps the entry's amounts, which is the same thing as long as each entity
    # books in its functional currency (as o2c does).
    for index, item in enumerate((record.get("line") or {}).get("items") or []):
        debit = None if item.get("debit") is None else Decimal(str(item["debit"]))
        credit = None if item.get("credit") is None else Decimal(str(item["credit"]))
        yield {
            "transaction": _id_value(record.get("id")),
            "transactionline": int(item.get("line", index)),
            "account": _id_value((item.get("account") or {}).get("id")),
            "debit": debit,
            "credit": credit,
            "amount": (debit or Decimal(0)) - (credit or Decimal(0)),
        }


# -- evaluation ----------------------------------------------------------------------------


def _compare(value: Any, op: str, literal: Any) -> bool:
    if value is None:
        return False
    if isinstance(literal, date):
        if not isinstance(value, date):
            return False
    elif isinstance(literal, Decimal):
        try:
            value = Decimal(str(value))
        except ArithmeticError:
            return False
    else:
        value = value.isoformat() if isinstance(value, date) else str(value)
    if op == "=":
        return value == literal
    if op == "!=":
        return value != literal
    if op == "<":
        return value < literal
    if op == "<=":
        return value <= literal
    if op == ">":
        return value > literal
    return value >= literal


def matches(row: dict[str, Any], predicate: Predicate) -> bool:
    value = row[predicate.ref.name]
    if predicate.op == "is null":
        return value is None
    if predicate.op == "is not null":
        return value is not None
    if predicate.op == "in":
        return any(_compare(value, "=", literal) for literal in predicate.value)
    return _compare(value, predicate.op, predicate.value)


def _integral(value: Any) -> int | None:
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return None


def _pushdown(query: Query) -> tuple[list[Condition], list[Predicate]]:
    """Split the WHERE clause into conditions on the indexed columns (exactly
    equivalent, so they leave the Python evaluation) and the rest."""
    pushed: list[Condition] = []
    rest: list[Predicate] = []
    id_column = "id" if query.table == "transaction" else "transaction"
    for p in query.where:
        name = p.ref.name
        comparison = p.op in ("=", "<", "<=", ">", ">=")
        if name == id_column and comparison and _integral(p.value) is not None:
            pushed.append(("num", p.op, _integral(p.value)))
        elif name == id_column and p.op == "in" and all(_integral(v) is not None for v in p.value):
            pushed.append(("num", "in", [_integral(v) for v in p.value]))
        elif query.table != "transaction":
            rest.append(p)
        elif name == "trandate" and comparison and isinstance(p.value, date):
            pushed.append(("day", p.op, p.value.isoformat()))
        elif name == "subsidiary" and p.op == "=" and (_integral(p.value) is not None or isinstance(p.value, str)):
            pushed.append(("scope", "=", str(_integral(p.value)) if isinstance(p.value, Decimal) else p.value))
        elif name == "type" and p.op == "=" and p.value == JOURNAL_TYPE:
            continue  # every row of this table is a journal entry
        else:
            rest.append(p)
    return pushed, rest


def _sort_key(column: str):
    # NULLs after values; an id column may mix numbers and text ids, numbers first.
    def key(row: dict[str, Any]) -> tuple[bool, bool, Any]:
        value = row[column]
        return (value is None, isinstance(value, str), "" if value is None else value)

    return key


def execute(tx: Tx, query: Query, *, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The rows of one page (typed values, before projection) and the query's total."""
    pushed, rest = _pushdown(query)
    order = query.order
    # Entries in internal-id order unless asked otherwise (lines follow their entry).
    sql_order: tuple[tuple[str, bool], ...] | None = (("num", False),)
    if order is not None:
        column, descending = order[0].name, order[1]
        if column == ("id" if query.table == "transaction" else "transaction"):
            sql_order = (("num", descending),)
        elif query.table == "transaction" and column == "trandate":
            sql_order = (("day", descending), ("num", descending))
        else:
            sql_order = None
    if query.table == "transaction" and not rest and sql_order is not None:
        total = tx.count_where(SYSTEM, "journalEntry", pushed)
        rows = [
            transaction_row(r.data)
            for r in tx.page(SYSTEM, "journalEntry", pushed, order_by=sql_order, limit=limit, offset=offset)
        ]
        return rows, total
    found: list[dict[str, Any]] = []
    entries = tx.page(SYSTEM, "journalEntry", pushed, order_by=sql_order or (("num", False),))
    for entry in entries:
        rows = [transaction_row(entry.data)] if query.table == "transaction" else accounting_line_rows(entry.data)
        found.extend(row for row in rows if all(matches(row, p) for p in rest))
    if sql_order is None and order is not None:
        found.sort(key=_sort_key(order[0].name), reverse=order[1])
    return found[offset : offset + limit], len(found)


def _render(value: Any, function: str, column: str) -> str | None:
    if value is None:
        return None
    if function == "df" and column == "currency":
        return CURRENCY_CODES.get(value, str(value)) if isinstance(value, int) else str(value)
    if isinstance(value, date):
        if function == "to_char":
            return value.isoformat()
        return f"{value.month}/{value.day}/{value.year}"  # unverified: the user's date format
    if function == "to_char":
        raise SuiteQLError(f"TO_CHAR(..., 'YYYY-MM-DD') needs a date; {column} is not one.")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def project(query: Query, row: dict[str, Any]) -> dict[str, Any]:
    """One result item: lower-case column names, values as strings, NULLs left out."""
    item: dict[str, Any] = {"links": []}
    for projection in query.projections:
        if projection.ref is None:
            for column in TABLES[query.table]:
                rendered = _render(row[column], "", column)
                if rendered is not None:
                    item[column] = rendered
            continue
        rendered = _render(row[projection.ref.name], projection.function, projection.ref.name)
        if rendered is not None:
            item[projection.name] = rendered
    return item
