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
subqueries. sqlglot parses the statement as Oracle SQL, which SuiteQL follows; only
the subset above is taken from its tree, and whatever else it holds is refused by name.

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

import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, cast

import sqlglot
from sqlglot import exp
from sqlglot.dialects.oracle import Oracle
from sqlglot.errors import ParseError, TokenError
from sqlglot.time import format_time

from sandbox.netsuite import SYSTEM
from sandbox.netsuite.suiteql_receivables import (
    LINK_COLUMNS,
    LINK_TABLES,
    RECEIVABLE_COLUMNS,
    RECEIVABLE_KINDS,
    journal_entries_of,
    journal_receivable_columns,
    link_rows,
    receivable_rows,
)
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
        *RECEIVABLE_COLUMNS,
    ),
    "transactionaccountingline": ("transaction", "transactionline", "account", "debit", "credit", "amount"),
    **{table: LINK_COLUMNS for table in LINK_TABLES},
}


class SuiteQLError(Exception):
    """A query outside the supported subset, or an invalid one: answered as a 400."""


# -- parsing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    qualifier: str  # "" when unqualified
    name: str


@dataclass(frozen=True)
class Projection:
    function: str  # "", "df" (BUILTIN.DF), "cf" (BUILTIN.CF) or "to_char"
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


# What the subset refuses, by the words that introduce it (others go by their upper-cased key).
_CLAUSES = {
    "with_": "WITH",
    "hint": "An optimizer hint",
    "distinct": "SELECT DISTINCT",
    "joins": "JOIN",
    "laterals": "LATERAL",
    "connect": "CONNECT BY",
    "pivots": "PIVOT",
    "group": "GROUP BY",
    "windows": "WINDOW",
    "locks": "FOR UPDATE",
    "query": "A subquery",
    "db": "A schema before the table",
    "columns": "A column list after the alias",
}
_COMPARISONS: dict[type[exp.Expression], str] = {
    exp.EQ: "=",
    exp.NEQ: "!=",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
}
_ISO_FORMAT = "YYYY-MM-DD"


def _sql(node: exp.Expression) -> str:
    return node.sql(dialect="oracle")


def _only(node: exp.Expression, *allowed: str) -> None:
    """Refuse a node carrying anything beyond the parts the subset reads."""
    for key, value in node.args.items():
        if key not in allowed and value not in (None, False, []):
            if key == "limit":  # FETCH FIRST, or TOP / LIMIT, which sqlglot reads as one
                clause = "FETCH" if isinstance(value, exp.Fetch) else "TOP / LIMIT"
            else:
                clause = _CLAUSES.get(key, key.upper())
            raise SuiteQLError(f"{clause} is not supported in this subset of SuiteQL.")


def _name(identifier: exp.Expression, what: str) -> str:
    if not isinstance(identifier, exp.Identifier):
        raise SuiteQLError(f"Expected {what}, found {_sql(identifier)}.")
    return identifier.name.lower()


def _ref(node: exp.Expression) -> Ref:
    if not isinstance(node, exp.Column) or isinstance(node.this, exp.Star):
        raise SuiteQLError(f"Expected a column, found {_sql(node)}.")
    _only(node, "this", "table")
    qualifier = node.args.get("table")
    return Ref(_name(qualifier, "a table alias") if qualifier else "", _name(node.this, "a column"))


def _format(node: exp.Expression, function: str) -> None:
    literal = node.args.get("format")
    oracle_format = literal.name if isinstance(literal, exp.Literal) and literal.is_string else ""
    if isinstance(node, exp.StrToDate):  # sqlglot turns TO_DATE's format into strftime's
        oracle_format = format_time(oracle_format, Oracle.INVERSE_TIME_MAPPING) or ""
    if oracle_format.upper() != _ISO_FORMAT:
        found = f"'{oracle_format}'" if oracle_format else "none"
        raise SuiteQLError(f"{function} supports only the format '{_ISO_FORMAT}', not {found}.")


def _function_name(function: exp.Func) -> str:
    return (function.name if isinstance(function, exp.Anonymous) else function.sql_name()).upper()


def _projection(node: exp.Expression) -> Projection:
    target = node.this if isinstance(node, exp.Alias) else node
    if isinstance(target, exp.Star):
        projection = Projection("", None, "*")
    elif (
        isinstance(target, exp.Dot)
        and isinstance(target.this, exp.Identifier)
        and target.this.name.upper() == "BUILTIN"
    ):
        function = target.expression
        if not isinstance(function, exp.Anonymous) or function.name.upper() not in ("DF", "CF"):
            label = _function_name(function) if isinstance(function, exp.Func) else _sql(function)
            raise SuiteQLError(f"BUILTIN.{label} is not supported; only BUILTIN.DF and BUILTIN.CF are.")
        if len(function.expressions) != 1:
            raise SuiteQLError(f"BUILTIN.{function.name.upper()} takes one column.")
        ref = _ref(function.expressions[0])
        projection = Projection(function.name.lower(), ref, ref.name)
    elif isinstance(target, exp.ToChar):
        _only(target, "this", "format")
        _format(target, "TO_CHAR")
        ref = _ref(target.this)
        projection = Projection("to_char", ref, ref.name)
    elif isinstance(target, exp.Func):
        raise SuiteQLError(f"Function {_function_name(target)} is not supported here.")
    else:
        ref = _ref(target)
        projection = Projection("", ref, ref.name)
    if isinstance(node, exp.Alias):
        if projection.ref is None:
            raise SuiteQLError("* takes no alias.")
        return Projection(projection.function, projection.ref, _name(node.args["alias"], "a column alias"))
    return projection


def _literal(node: exp.Expression) -> Any:
    if isinstance(node, exp.Literal):
        return node.name if node.is_string else Decimal(node.name)
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and node.this.is_number:
        return -Decimal(node.this.name)
    if isinstance(node, exp.StrToDate):
        _only(node, "this", "format")
        value = node.this
        if not (isinstance(value, exp.Literal) and value.is_string):
            raise SuiteQLError(f"TO_DATE takes a quoted date, not {_sql(value)}.")
        _format(node, "TO_DATE")
        try:
            return date.fromisoformat(value.name)
        except ValueError:
            raise SuiteQLError(f"Invalid date '{value.name}' for the format '{_ISO_FORMAT}'.") from None
    if isinstance(node, exp.DateStrToDate):  # sqlglot would print it back as a TO_DATE
        raise SuiteQLError("DATE '...' literals are not supported; use TO_DATE('...', 'YYYY-MM-DD').")
    raise SuiteQLError(f"Expected a number, a 'string' or TO_DATE(...), found {_sql(node)}.")


def _predicate(node: exp.Expression) -> Predicate:
    if isinstance(node, exp.Or):
        raise SuiteQLError("OR is not supported: join conditions with AND only.")
    if isinstance(node, exp.Paren):
        raise SuiteQLError("Parentheses in WHERE are not supported: join conditions with AND only.")
    if type(node) in _COMPARISONS:
        return Predicate(_ref(node.this), _COMPARISONS[type(node)], _literal(node.expression))
    if isinstance(node, exp.In):
        _only(node, "this", "expressions")
        if not node.expressions:
            raise SuiteQLError("IN needs at least one value.")
        return Predicate(_ref(node.this), "in", tuple(_literal(value) for value in node.expressions))
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        return Predicate(_ref(node.this), "is null")
    if isinstance(node, exp.Not) and isinstance(node.this, exp.Is) and isinstance(node.this.expression, exp.Null):
        return Predicate(_ref(node.this.this), "is not null")
    if isinstance(node, exp.Is) or (isinstance(node, exp.Not) and isinstance(node.this, exp.Is)):
        raise SuiteQLError("IS is supported only as IS NULL or IS NOT NULL.")
    if (isinstance(node, exp.Not) and isinstance(node.this, (exp.In, exp.Like))) or node.args.get("negate"):
        raise SuiteQLError("NOT IN / NOT LIKE are not supported.")
    if isinstance(node, (exp.Binary, exp.Predicate, exp.Not)):
        raise SuiteQLError(f"Unsupported operator {node.key.upper()!r} in {_sql(node)}.")
    raise SuiteQLError(f"Expected a condition, found {_sql(node)}.")


def _conjuncts(condition: exp.Expression) -> Iterator[exp.Expression]:
    # flatten() on a lone comparison would yield its operands, not the comparison.
    # Parentheses stay, to be refused like any others.
    if not isinstance(condition, exp.And):
        return iter([condition])
    # flatten() is typed over sqlglot's Expr trait; the nodes of a parsed tree are Expressions.
    return cast(Iterator[exp.Expression], condition.flatten(unnest=False))


def _order(order: exp.Order) -> tuple[Ref, bool]:
    if len(order.expressions) != 1:
        raise SuiteQLError("ORDER BY supports one column here.")
    [ordered] = order.expressions
    descending = bool(ordered.args.get("desc"))
    # sqlglot fills in Oracle's NULL order (last ascending, first descending); the
    # subset sorts only that way.
    if bool(ordered.args.get("nulls_first")) != descending:
        raise SuiteQLError("NULLS FIRST / NULLS LAST are not supported: NULLs sort last ascending, first descending.")
    _only(ordered, "this", "desc", "nulls_first")
    return _ref(ordered.this), descending


def _statement(text: str) -> exp.Expression:
    try:
        statements = [s for s in sqlglot.parse(text, read="oracle") if s is not None]
    except TokenError as exc:
        raise SuiteQLError(f"Unexpected character in the query: {exc}.") from None
    except ParseError as exc:
        if not exc.errors:
            raise SuiteQLError(str(exc)) from None
        first = exc.errors[0]
        found = first["highlight"]
        if not first["end_context"].strip() and not first["description"].startswith("Invalid expression"):
            raise SuiteQLError(f"Unexpected end of query after {found!r}.") from None
        raise SuiteQLError(f"Unexpected {found!r} at line {first['line']}, column {first['col']}.") from None
    if len(statements) != 1:
        raise SuiteQLError("Send one statement per query.")
    [statement] = statements
    if isinstance(statement, exp.SetOperation):
        raise SuiteQLError("UNION, INTERSECT and MINUS are not supported in this subset of SuiteQL.")
    if not isinstance(statement, exp.Select):
        raise SuiteQLError(f"Expected SELECT, found {text.split()[0].upper()}.")
    for identifier in statement.find_all(exp.Identifier):
        if identifier.quoted:
            raise SuiteQLError(
                f'Unexpected character \'"\' in "{identifier.name}": quoted identifiers are not supported; '
                "quote values with 'single quotes'."
            )
    return statement


def parse(text: str) -> Query:
    if not isinstance(text, str) or not text.strip():
        raise SuiteQLError('The request body needs a query in "q".')
    select = _statement(text)
    _only(select, "expressions", "from_", "where", "order")
    if not select.expressions:
        raise SuiteQLError("Expected a column after SELECT.")
    source = select.args.get("from_")
    if source is None:
        raise SuiteQLError("Expected FROM and a table.")
    table_node = source.this
    if not isinstance(table_node, exp.Table):
        raise SuiteQLError(f"Expected a table after FROM, found {_sql(table_node)}.")
    _only(table_node, "this", "alias")
    table = _name(table_node.this, "a table")
    if table not in TABLES:
        raise SuiteQLError(f"Record '{table}' was not found (this sandbox knows {', '.join(sorted(TABLES))}).")
    alias_node = table_node.args.get("alias")
    if alias_node is not None:
        _only(alias_node, "this")
        alias = _name(alias_node.this, "an alias")
        # sqlglot takes a lone keyword after the table (ORDER without BY, say) for its alias.
        if alias.upper() in Oracle.Tokenizer.KEYWORDS or f"{alias.upper()} BY" in Oracle.Tokenizer.KEYWORDS:
            raise SuiteQLError(f"Unexpected {alias.upper()} after the table.")
    where = select.args.get("where")
    order = select.args.get("order")
    parsed = Query(
        table,
        alias if alias_node is not None else table,
        tuple(_projection(node) for node in select.expressions),
        tuple(_predicate(node) for node in _conjuncts(where.this)) if where is not None else (),
        _order(order) if order is not None else None,
    )
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


def transaction_row(tx: Tx | None, record: dict[str, Any]) -> dict[str, Any]:
    """A journal entry's row; with `tx`, its receivable columns too (an A/R entry's open
    amount costs a read of its applications, so they are read only when asked for)."""
    receivable = journal_receivable_columns(tx, record) if tx is not None else dict.fromkeys(RECEIVABLE_COLUMNS)
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
        **receivable,
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


# A predicate's comparison, on a value brought to its literal's type.
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


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
    return _OPERATORS[op](value, literal)


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
        elif name == "custbody_o2c_invoice" and p.op == "=" and isinstance(p.value, str) and p.value:
            pushed.append(("data.custbody_o2c_invoice", "=", p.value))  # not indexed, but filtered in SQL
        else:
            rest.append(p)
    return pushed, rest


def _sort_key(column: str) -> Callable[[dict[str, Any]], tuple[bool, bool, Any]]:
    # NULLs after values; an id column may mix numbers and text ids, numbers first.
    def key(row: dict[str, Any]) -> tuple[bool, bool, Any]:
        value = row[column]
        return (value is None, isinstance(value, str), "" if value is None else value)

    return key


def _kinds(query: Query) -> set[str]:
    """The transaction types a query can match, by its predicates on `type`."""
    kinds = {JOURNAL_TYPE, *RECEIVABLE_KINDS}
    for p in query.where:
        if p.ref.name == "type" and p.op == "=":
            kinds &= {p.value}
        elif p.ref.name == "type" and p.op == "in":
            kinds &= set(p.value)
    return kinds


def _wants_receivable_columns(query: Query) -> bool:
    return any(ref.name in RECEIVABLE_COLUMNS for ref in _refs(query)) or any(p.ref is None for p in query.projections)


def _sorted_page(
    query: Query, found: list[dict[str, Any]], *, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    default = Ref("", "id" if "id" in TABLES[query.table] else TABLES[query.table][0])
    column, descending = query.order if query.order is not None else (default, False)
    found.sort(key=_sort_key(column.name), reverse=descending)
    return found[offset : offset + limit], len(found)


def execute(tx: Tx, query: Query, *, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The rows of one page (typed values, before projection) and the query's total."""
    if query.table in LINK_TABLES:
        rows = [row for row in link_rows(tx, query.where) if all(matches(row, p) for p in query.where)]
        return _sorted_page(query, rows, offset=offset, limit=limit)
    if query.table == "transaction":
        kinds = _kinds(query)
        others = [kind for kind in sorted(kinds - {JOURNAL_TYPE}) if receivable_rows(tx, kind, count_only=True)]
        if others or JOURNAL_TYPE not in kinds:
            return _mixed(tx, query, kinds, others, offset=offset, limit=limit)
    return _journal(tx, query, offset=offset, limit=limit)


def _mixed(
    tx: Tx, query: Query, kinds: set[str], others: list[str], *, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Journal entries and receivables records together, evaluated here (receivables
    records are few beside journal entries, and none of their columns is indexed)."""
    found: list[dict[str, Any]] = []
    if JOURNAL_TYPE in kinds:
        everything = _journal(tx, query, offset=0, limit=SUITEQL_ROW_CAP)[0]
        found.extend(everything)
    for kind in others:
        for row in receivable_rows(tx, kind):
            row["currency"] = CURRENCY_IDS.get(row["currency"], row["currency"])
            if all(matches(row, p) for p in query.where):
                found.append(row)
    return _sorted_page(query, found, offset=offset, limit=limit)


# The most rows a mixed query gathers from journal entries (REST SuiteQL's own cap).
SUITEQL_ROW_CAP = 100_000


def _journal(tx: Tx, query: Query, *, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    pushed, rest = _pushdown(query)
    receivable_tx = tx if _wants_receivable_columns(query) else None
    for p in query.where:
        if query.table == "transaction" and p.ref.name == "entity" and p.op == "=" and _integral(p.value) is not None:
            # A customer's entries, by the A/R index (the entity is on their lines).
            pushed.append(("num", "in", journal_entries_of(tx, str(_integral(p.value)))))
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
            transaction_row(receivable_tx, r.data)
            for r in tx.page(SYSTEM, "journalEntry", pushed, order_by=sql_order, limit=limit, offset=offset)
        ]
        return rows, total
    found: list[dict[str, Any]] = []
    entries = tx.page(SYSTEM, "journalEntry", pushed, order_by=sql_order or (("num", False),))
    for entry in entries:
        entry_rows: Iterable[dict[str, Any]] = (
            [transaction_row(receivable_tx, entry.data)]
            if query.table == "transaction"
            else accounting_line_rows(entry.data)
        )
        found.extend(row for row in entry_rows if all(matches(row, p) for p in rest))
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
