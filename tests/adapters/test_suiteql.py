"""The sandbox's SuiteQL over real HTTP: the supported subset, what it refuses, and the
REST query service's paging rules."""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from canonical.journal import ChartOfAccounts, JournalEntry, JournalLine, invoice_entry
from canonical.money import Money
from sandbox.netsuite import suiteql

QUERY = "/query/v1/suiteql"
TRANSIENT = {"Prefer": "transient"}


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


@pytest.fixture
async def http(sandbox):
    async with httpx.AsyncClient(base_url=sandbox.netsuite_url, headers={"Authorization": "Bearer t"}) as client:
        yield client


@pytest.fixture
async def entries(netsuite):
    """Four entries in subsidiary 1 (ids 101..104) and one in subsidiary 2 (105)."""
    chart = ChartOfAccounts()
    posted = [
        invoice_entry(
            external_id="je-a",
            subsidiary="1",
            posting_date=date(2026, 10, 1),
            memo="Invoice A",
            revenue=usd("100.00"),
            tax=usd("7.25"),
            chart=chart,
            invoice_id="in_a",
        ),
        invoice_entry(
            external_id="je-b",
            subsidiary="1",
            posting_date=date(2026, 10, 15),
            memo="",
            revenue=usd("50.50"),
            tax=usd("0.00"),
            chart=chart,
            invoice_id="in_b",
        ),
        JournalEntry(
            external_id="je-c",
            subsidiary="1",
            currency="EUR",
            posting_date=date(2026, 10, 31),
            memo="Revenue",
            contract_id="C-1",
            lines=[
                JournalLine(account="2400", debit=Money.of("9.99", "EUR")),
                JournalLine(account="4000", credit=Money.of("9.99", "EUR")),
            ],
        ),
        invoice_entry(
            external_id="je-d",
            subsidiary="1",
            posting_date=date(2026, 11, 1),
            memo="November",
            revenue=usd("1.00"),
            tax=usd("0.10"),
            chart=chart,
        ),
        invoice_entry(
            external_id="je-e",
            subsidiary="2",
            posting_date=date(2026, 10, 2),
            memo="Other entity",
            revenue=usd("2.00"),
            tax=usd("0.20"),
            chart=chart,
            invoice_id="in_e",
        ),
    ]
    refs = [await netsuite.post_journal_entry(e) for e in posted]
    assert [r.internal_id for r in refs] == ["101", "102", "103", "104", "105"]
    return refs


async def run(http, q: str, **params) -> dict:
    response = await http.post(QUERY, params=params, json={"q": q}, headers=TRANSIENT)
    assert response.status_code == 200, response.text
    return response.json()


async def refused(http, q: str, *, headers=TRANSIENT, **params) -> str:
    response = await http.post(QUERY, params=params, json={"q": q}, headers=headers)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == 400 and body["title"] == "Bad Request"
    [detail] = body["o:errorDetails"]
    return f"{detail['o:errorCode']}: {detail['detail']}"


async def test_projections_values_and_nulls(http, entries):
    body = await run(
        http,
        "SELECT t.id, t.tranid, t.externalid AS eid, t.trandate, TO_CHAR(t.trandate, 'YYYY-MM-DD') "
        "AS day, t.type, t.subsidiary, t.currency, BUILTIN.DF(t.currency) AS code, t.memo, "
        "t.custbody_o2c_invoice, t.custbody_o2c_contract FROM transaction t ORDER BY t.id",
    )
    assert (body["count"], body["totalResults"], body["hasMore"], body["offset"]) == (5, 5, False, 0)
    assert [link["rel"] for link in body["links"]] == ["self"]
    first, second, third = body["items"][:3]
    assert first == {
        "links": [],
        "id": "101",
        "tranid": "JE000101",
        "eid": "je-a",
        "trandate": "10/1/2026",
        "day": "2026-10-01",
        "type": "Journal",
        "subsidiary": "1",
        "currency": "1",
        "code": "USD",
        "memo": "Invoice A",
        "custbody_o2c_invoice": "in_a",
    }
    assert "memo" not in second and "custbody_o2c_contract" not in second  # NULLs are left out
    assert (third["code"], third["currency"], third["custbody_o2c_contract"]) == ("EUR", "4", "C-1")
    star = await run(http, "select * from transaction where id = 103")
    assert set(star["items"][0]) == {
        "links",
        "id",
        "tranid",
        "externalid",
        "trandate",
        "type",
        "subsidiary",
        "currency",
        "memo",
        "custbody_o2c_contract",
    }


async def test_accounting_lines(http, entries):
    body = await run(
        http,
        "SELECT tal.transaction, tal.transactionline AS line, tal.account, tal.debit, "
        "tal.credit, tal.amount FROM transactionaccountingline tal "
        "WHERE tal.transaction IN (101, 103) ORDER BY tal.transaction DESC",
    )
    rows = [
        (i["transaction"], i["line"], i["account"], i.get("debit"), i.get("credit"), i["amount"]) for i in body["items"]
    ]
    assert rows == [
        ("103", "0", "2400", "9.99", None, "9.99"),
        ("103", "1", "4000", None, "9.99", "-9.99"),
        ("101", "0", "1200", "107.25", None, "107.25"),
        ("101", "1", "2400", None, "100.00", "-100.00"),
        ("101", "2", "2200", None, "7.25", "-7.25"),
    ]
    credits = await run(
        http,
        "SELECT transaction, account FROM transactionaccountingline "
        "WHERE credit IS NOT NULL AND account = 2400 ORDER BY transaction",
    )
    assert [(i["transaction"], i["account"]) for i in credits["items"]] == [
        ("101", "2400"),
        ("102", "2400"),
        ("104", "2400"),
        ("105", "2400"),
    ]
    by_amount = await run(
        http, "SELECT transaction, debit FROM transactionaccountingline WHERE debit > 50 ORDER BY debit"
    )
    assert [i["debit"] for i in by_amount["items"]] == ["50.50", "107.25"]


@pytest.mark.parametrize(
    "where, ids",
    [
        ("t.subsidiary = 1", ["101", "102", "103", "104"]),
        ("t.subsidiary = '2'", ["105"]),
        ("t.subsidiary <> 1", ["105"]),
        ("t.subsidiary != 1 AND t.id >= 105", ["105"]),
        (
            "t.trandate >= TO_DATE('2026-10-02', 'YYYY-MM-DD') AND t.trandate < TO_DATE('2026-11-01', 'YYYY-MM-DD')",
            ["102", "103", "105"],
        ),
        ("t.trandate = TO_DATE('2026-10-31', 'YYYY-MM-DD')", ["103"]),
        ("t.trandate <= TO_DATE('2026-10-01', 'YYYY-MM-DD')", ["101"]),
        ("t.trandate > TO_DATE('2026-10-31', 'YYYY-MM-DD')", ["104"]),
        ("t.id IN (101, 104, 999)", ["101", "104"]),
        ("t.id > 102 AND t.id <= 104", ["103", "104"]),
        ("t.id < 102", ["101"]),
        ("t.memo IS NULL", ["102"]),
        ("t.memo = 'November'", ["104"]),
        ("t.externalid IN ('je-b', 'je-e')", ["102", "105"]),
        ("t.custbody_o2c_invoice IS NOT NULL AND t.subsidiary = 1", ["101", "102"]),
        ("t.custbody_o2c_contract = 'C-1'", ["103"]),
        ("t.type = 'Journal' AND t.id = 101", ["101"]),
        ("t.type = 'CustInvc'", []),
        ("t.currency = 4", ["103"]),
        ("t.tranid = 'JE000102'", ["102"]),
        ("t.id = -1", []),
    ],
)
async def test_predicates(http, entries, where, ids):
    body = await run(http, f"SELECT t.id FROM transaction t WHERE {where} ORDER BY t.id")
    assert [i["id"] for i in body["items"]] == ids
    assert body["totalResults"] == len(ids)


async def test_ordering(http, entries):
    by_date = await run(http, "SELECT id FROM transaction ORDER BY trandate DESC")
    assert [i["id"] for i in by_date["items"]] == ["104", "103", "102", "105", "101"]
    by_memo = await run(http, "SELECT id FROM transaction ORDER BY memo")
    assert [i["id"] for i in by_memo["items"]] == ["101", "104", "105", "103", "102"]  # NULLs last
    unordered = await run(http, "SELECT id FROM transaction;")
    assert [i["id"] for i in unordered["items"]] == ["101", "102", "103", "104", "105"]


@pytest.mark.parametrize(
    "q, message",
    [
        ("SELECT id FROM transaction WHERE id = 1 OR id = 2", "OR is not supported"),
        (
            "SELECT t.id FROM transaction t JOIN transactionaccountingline tal ON tal.transaction = t.id",
            "JOIN is not supported",
        ),
        ("SELECT id FROM customer", "Record 'customer' was not found"),
        ("SELECT t.amount FROM transaction t", "Field 'amount' for record 'transaction' was not found"),
        ("SELECT x.id FROM transaction t", "Unknown table alias 'x'"),
        (
            "SELECT id FROM transaction WHERE trandate BETWEEN TO_DATE('2026-10-01', 'YYYY-MM-DD') AND "
            "TO_DATE('2026-10-31', 'YYYY-MM-DD')",
            "Unsupported operator 'BETWEEN'",
        ),
        ("SELECT COUNT(*) FROM transaction", "Function COUNT is not supported"),
        ("SELECT TO_CHAR(trandate, 'DD/MM/YYYY') FROM transaction", "only the format 'YYYY-MM-DD'"),
        ("SELECT TO_CHAR(memo, 'YYYY-MM-DD') AS m FROM transaction WHERE id = 101", "needs a date"),
        ("SELECT BUILTIN.CONSOLIDATE(currency) FROM transaction", "only BUILTIN.DF"),
        ("SELECT id FROM transaction GROUP BY id", "GROUP BY is not supported"),
        ("SELECT id FROM transaction WHERE (id = 1)", "Parentheses in WHERE are not supported"),
        ("SELECT id FROM transaction WHERE memo LIKE 'a%'", "Unsupported operator 'LIKE'"),
        ("SELECT id FROM transaction WHERE id NOT IN (1)", "NOT IN / NOT LIKE are not supported"),
        ("SELECT id FROM transaction ORDER BY id, memo", "ORDER BY supports one column"),
        ("SELECT DISTINCT id FROM transaction", "SELECT DISTINCT is not supported"),
        ("SELECT id FROM transaction WHERE trandate > TO_DATE('2026-02-30', 'YYYY-MM-DD')", "Invalid date"),
        ('SELECT id FROM transaction WHERE id = "101"', "Unexpected character"),
        ("SELECT id FROM transaction WHERE id =", "Unexpected end of query"),
        ("SELECT id FROM transaction FETCH FIRST 5 ROWS ONLY", "FETCH is not supported"),
        ("SELECT id FROM transaction t t2", "Unexpected 't2'"),
        ("UPDATE transaction SET memo = 'x'", "Expected SELECT"),
        ("SELECT id FROM transaction; SELECT id FROM transaction", "one statement per query"),
        ("SELECT id FROM transaction UNION SELECT id FROM transaction", "UNION, INTERSECT and MINUS are not"),
        ("WITH t AS (SELECT id FROM transaction) SELECT id FROM t", "WITH is not supported"),
        ("SELECT id FROM transaction WHERE id IN (SELECT id FROM transaction)", "A subquery is not supported"),
        ("SELECT id FROM (SELECT id FROM transaction)", "Expected a table after FROM"),
        ("SELECT id FROM transaction START WITH id = 1 CONNECT BY PRIOR id = id", "CONNECT BY is not supported"),
        ("SELECT id FROM transaction WHERE id = 101 AND (memo = 'x')", "Parentheses in WHERE are not supported"),
        ("SELECT id FROM transaction WHERE NOT id = 101", "Unsupported operator 'NOT'"),
        ("SELECT id FROM transaction WHERE id IN ()", "IN needs at least one value"),
        ("SELECT id FROM transaction WHERE memo IS NOT 'x'", "only as IS NULL or IS NOT NULL"),
        ("SELECT id FROM transaction WHERE 101 = id", "Expected a column, found 101"),
        ("SELECT id FROM transaction WHERE id = tranid", "Expected a number, a 'string' or TO_DATE(...), found tranid"),
        ("SELECT id FROM transaction WHERE trandate > DATE '2026-10-01'", "DATE '...' literals are not supported"),
        ("SELECT id FROM transaction WHERE trandate > TO_DATE('01/10/2026', 'DD/MM/YYYY')", "not 'DD/MM/YYYY'"),
        ("SELECT id FROM transaction ORDER BY id NULLS FIRST", "NULLS FIRST / NULLS LAST are not supported"),
        ("SELECT id FROM transaction ORDER BY 1", "Expected a column, found 1"),
        ("SELECT t.* FROM transaction t", "Expected a column, found t.*"),
        ("SELECT id + 1 FROM transaction", "Expected a column, found id + 1"),
        ("SELECT /*+ FULL(t) */ id FROM transaction t", "An optimizer hint is not supported"),
        ("SELECT TOP 5 id FROM transaction", "TOP / LIMIT is not supported"),
        ("SELECT id FROM transaction FOR UPDATE", "FOR UPDATE is not supported"),
        ("SELECT id FROM transaction order", "Unexpected ORDER after the table"),
        ("SELECT id FROM transaction WHERE memo = 'open", "Unexpected character"),
        ("", "needs a query"),
    ],
)
async def test_refused_forms_answer_a_clear_400(http, entries, q, message):
    detail = await refused(http, q)
    assert detail.startswith("INVALID_PARAMETER: Invalid search query.") and message in detail, detail


async def test_prefer_transient_is_required(http, entries):
    detail = await refused(http, "SELECT id FROM transaction", headers={})
    assert detail.startswith("INVALID_HEADER") and "Prefer: transient" in detail
    detail = await refused(http, "SELECT id FROM transaction", headers={"Prefer": "respond-async"})
    assert detail.startswith("INVALID_HEADER")
    response = await http.post(
        QUERY, json={"q": "SELECT id FROM transaction"}, headers={"Prefer": "respond-async, transient"}
    )
    assert response.status_code == 200
    wrong_body = await http.post(QUERY, json={"query": "SELECT id FROM transaction"}, headers=TRANSIENT)
    assert wrong_body.status_code == 400


async def test_offset_paging_and_the_100k_cap(http, entries):
    first = await run(http, "SELECT id FROM transaction ORDER BY id", limit=2)
    assert (first["count"], first["hasMore"], first["totalResults"], first["offset"]) == (2, True, 5, 0)
    next_link = {link["rel"]: link["href"] for link in first["links"]}["next"]
    assert "offset=2" in next_link and "limit=2" in next_link
    second = (
        await http.post(next_link, json={"q": "SELECT id FROM transaction ORDER BY id"}, headers=TRANSIENT)
    ).json()
    assert [i["id"] for i in second["items"]] == ["103", "104"] and second["offset"] == 2 and second["hasMore"]
    last = await run(http, "SELECT id FROM transaction ORDER BY id", limit=2, offset=4)
    assert ([i["id"] for i in last["items"]], last["hasMore"]) == (["105"], False)
    assert [link["rel"] for link in last["links"]] == ["self"]
    past = await run(http, "SELECT id FROM transaction", limit=1000, offset=99_000)
    assert (past["items"], past["totalResults"], past["hasMore"]) == ([], 5, False)
    capped = await refused(http, "SELECT id FROM transaction", limit=1000, offset=99_001)
    assert capped.startswith("INVALID_PARAMETER") and "100,000" in capped
    assert "100,000" in await refused(http, "SELECT id FROM transaction", limit=1, offset=100_000)
    for params in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"limit": "many"}):
        assert (await refused(http, "SELECT id FROM transaction", **params)).startswith("INVALID_PARAMETER")


async def test_keyset_paging_of_a_seeded_subsidiary(http, sandbox):
    sandbox.seed_period(tag="q1", period="2026-10", invoices=30, paid_every=3)
    sandbox.seed_period(tag="q2", period="2026-10", invoices=5, subsidiary="9")
    q = (
        "SELECT t.id AS id, t.externalid AS externalid FROM transaction t WHERE t.type = 'Journal' "
        "AND t.subsidiary = 1 AND t.trandate >= TO_DATE('2026-10-01', 'YYYY-MM-DD') "
        "AND t.trandate < TO_DATE('2026-11-01', 'YYYY-MM-DD') AND t.id > {after} ORDER BY t.id"
    )
    seen, after, pages = [], 0, 0
    while True:
        body = await run(http, q.format(after=after), limit=7)
        pages += 1
        seen += [i["externalid"] for i in body["items"]]
        assert body["offset"] == 0 and body["totalResults"] == 40 - len(seen) + len(body["items"])
        if not body["hasMore"]:
            break
        after = int(body["items"][-1]["id"])
    assert pages == 6 and len(seen) == len(set(seen)) == 40  # 30 invoices, 10 of them paid
    assert seen[:3] == [
        "amendment-recon-q1-000000-invoice",
        "payment-in_recon_q1_000000",
        "amendment-recon-q1-000001-invoice",
    ]


def test_parser_builds_the_query_it_reads():
    query = suiteql.parse(
        "select T.ID as Id, builtin.df(t.currency) from TRANSACTION T "
        "where t.id in (1, 2.0) and t.memo is not null order by t.id desc"
    )
    assert query.table == "transaction" and query.alias == "t"
    assert [(p.function, p.ref.name, p.name) for p in query.projections] == [
        ("", "id", "id"),
        ("df", "currency", "currency"),
    ]
    assert [(p.ref.name, p.op) for p in query.where] == [("id", "in"), ("memo", "is not null")]
    assert query.order == (suiteql.Ref("t", "id"), True)
    pushed, rest = suiteql._pushdown(query)
    assert pushed == [("num", "in", [1, 2])] and [p.ref.name for p in rest] == ["memo"]


def test_parser_reads_plain_oracle_forms():
    query = suiteql.parse("SELECT id eid /* the key */ FROM transaction WHERE id = +1e2 -- the first hundred")
    assert [p.name for p in query.projections] == ["eid"] and query.where[0].value == 100
