"""The sandbox bank over HTTP: it writes what the parser reads, refuses what it cannot
write plainly, keeps each file once and can be faulted like any system."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import httpx
import pytest

from adapters.bank import read_statement
from sandbox.bank import Account, StatementFile, combined, duplicate_of, exact, unknown_payer, write_statement

BODY = {
    "format": "camt.053.001.08",
    "date": "2024-01-31",
    "account": "DE89370400440532013000",
    "currency": "EUR",
    "opening_balance": "10.00",
    "entries": [exact("INV-1", "5.00", payer="ACME").to_json()],
}


def test_a_statement_is_kept_once_and_can_be_fetched_again(sandbox):
    url = f"{sandbox.bank_url}/statements"
    first = httpx.post(url, json=BODY)
    assert first.status_code == 201 and first.headers["content-type"].startswith("application/xml")
    second = httpx.post(url, json=BODY)
    assert second.headers["Statement-Id"] == first.headers["Statement-Id"]
    [listed] = httpx.get(url).json()["data"]
    assert listed["id"] == first.headers["Statement-Id"] and listed["entries"] == 1
    assert listed["format"] == "camt.053.001.08" and "content" not in listed
    again = httpx.get(f"{url}/{listed['id']}")
    assert again.status_code == 200 and again.content == first.content
    assert httpx.get(f"{url}/stmt_nothing").status_code == 404
    bai2 = httpx.post(url, json={**BODY, "format": "bai2", "account": "123"})
    assert bai2.headers["content-type"].startswith("text/plain") and bai2.content.startswith(b"01,")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "camt.054.001.08"}, "format must be one of camt.053.001.02, camt.053.001.08, bai2"),
        ({"iban": "x"}, "body: unknown field(s) iban"),
        ({"date": "31.01.2024"}, "date must be a date (YYYY-MM-DD)"),
        ({"currency": "XXX"}, "unknown or unsupported currency 'XXX'"),
        ({"opening_balance": "ten"}, "body.opening_balance 'ten' is not a number"),
        ({"opening_balance": "10.001"}, "10.001 has more decimals than EUR allows"),
        ({"entries": [{"amount": "-1.00"}]}, "body.entries[0].amount must be positive; credit says which way it goes"),
        ({"entries": [{"amount": "1", "memo": "x"}]}, "body.entries[0]: unknown field(s) memo"),
        ({"entries": [{"amount": "1", "credit": "yes"}]}, "body.entries[0].credit must be true or false"),
        ({"entries": [{"amount": "1", "status": "BOOKED"}]}, "body.entries[0].status must be BOOK, PDNG or INFO"),
        ({"accounts": []}, "give either accounts or one account's fields, not both"),
        ({"account": ""}, "body.account is required"),
    ],
)
def test_what_the_bank_cannot_write_plainly_is_refused(sandbox, change, message):
    response = httpx.post(f"{sandbox.bank_url}/statements", json={**BODY, **change})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == message
    assert httpx.get(f"{sandbox.bank_url}/statements").json()["data"] == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"amount": "1", "reversal": True}, "BAI2 has neither a reversal indicator nor entry statuses"),
        ({"amount": "1", "bank_reference": "A,B"}, "'A,B': a BAI2 field holds neither ',' nor '/'"),
        ({"amount": "1", "customer_reference": "A/B"}, "'A/B': a BAI2 field holds neither ',' nor '/'"),
    ],
)
def test_bai2_refuses_what_its_records_cannot_carry(sandbox, entry, message):
    body = {**BODY, "format": "bai2", "entries": [entry]}
    response = httpx.post(f"{sandbox.bank_url}/statements", json=body)
    assert response.status_code == 400 and response.json()["error"]["message"].startswith(message)


def test_the_bank_can_be_faulted_like_any_system(sandbox):
    sandbox.fault("bank", "5xx", times=1)
    assert httpx.post(f"{sandbox.bank_url}/statements", json=BODY).status_code == 500
    assert httpx.post(f"{sandbox.bank_url}/statements", json=BODY).status_code == 201


def test_the_in_process_writer_makes_the_same_file_as_the_endpoint(sandbox):
    entries = [
        exact("INV-1", "5.00", payer="ACME"),
        combined(["INV-2", "INV-3"], "7.00"),
        unknown_payer("1.00"),
    ]
    entries.append(duplicate_of(entries[0], bank_reference="DUP-1"))
    over_http = httpx.post(f"{sandbox.bank_url}/statements", json={**BODY, "entries": [e.to_json() for e in entries]})
    in_process = write_statement(
        StatementFile(
            "camt.053.001.08", date(2024, 1, 31), [Account(BODY["account"], "EUR", Decimal("10.00"), entries)]
        )
    )
    assert over_http.content == in_process
    statement = read_statement(in_process)
    assert statement.closing.amount == Decimal("28.00")
    assert [e.bank_reference for e in statement.entries][-1] == "DUP-1"
