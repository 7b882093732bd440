"""Hostile request files at `o2c credit --file`, each in its own process: exit code 2, a
one-line reason on stderr, no traceback, and no connection to Temporal or billing (the trap of
test_cli_bad_requests counts any). Amounts no account holds (1e27 cents and up) among them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.badinput.test_cli_bad_requests import ROOT, Trap, connections


@pytest.fixture(scope="module")
def trap():
    running = Trap()
    yield running
    running.sock.close()


def credit_cli(trap: Trap, path: Path, *args: str) -> subprocess.CompletedProcess:
    address = f"127.0.0.1:{trap.getsockname()[1]}"
    env = {
        **os.environ,
        "O2C_TEMPORAL_ADDRESS": address,
        "O2C_SANDBOX_URL": f"http://{address}",
        "O2C_STRIPE_BASE_URL": f"http://{address}/stripe/v1",
        "O2C_HTTP_TIMEOUT_SECONDS": "2",
    }
    return subprocess.run(
        [sys.executable, "-m", "starter.cli", "credit", "--file", str(path), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def request(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        credit_id="CR-1",
        invoice_id="in_1",
        reason="order_change",
        explanation="seats removed mid-month",
        amount={"amount": "10.00", "currency": "USD"},
    )
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


HOSTILE = {
    "not json": "credit CR-1 please",
    "a list": json.dumps([request()]),
    "truncated": json.dumps(request())[:-9],
    "deep nesting": "{" * 2000 + "}" * 2000,
    "an unknown field": json.dumps(request(approved_by="me")),
    "no invoice": json.dumps(request(invoice_id=None)),
    "no explanation": json.dumps(request(explanation="")),
    "a reason billing does not know": json.dumps(request(reason="because")),
    "lines and an amount": json.dumps(request(lines=[{"line_id": "il_1", "quantity": 1}])),
    "a float amount": json.dumps(request(amount={"amount": 10.5, "currency": "USD"})),
    "a negative amount": json.dumps(request(amount=usd("-10.00"))),
    "a zero amount": json.dumps(request(amount=usd("0.00"))),
    "fractions of a cent": json.dumps(request(amount=usd("10.001"))),
    "1e27 dollars": json.dumps(request(amount=usd("1e27"))),
    "1e9999 dollars": json.dumps(request(amount=usd("1e9999"))),
    "NaN": json.dumps(request(amount=usd("NaN"))),
    "an unknown currency": json.dumps(request(amount={"amount": "10.00", "currency": "XXX"})),
}


@pytest.mark.parametrize("why", sorted(HOSTILE))
def test_a_hostile_credit_file_exits_2_with_a_reason_and_starts_nothing(trap, tmp_path, why):
    path = tmp_path / "credit.json"
    path.write_text(HOSTILE[why], encoding="utf-8")
    done = credit_cli(trap, path, "--as", "cindy.success")
    assert done.returncode == 2, (why, done.stdout, done.stderr)
    assert done.stderr.startswith("o2c: ") and "Traceback" not in done.stderr, (why, done.stderr)
    assert connections(trap) == 0, why


def test_a_credit_without_who_asks_exits_2_without_connecting(trap, tmp_path):
    path = tmp_path / "credit.json"
    path.write_text(json.dumps(request()), encoding="utf-8")
    done = credit_cli(trap, path)
    assert done.returncode == 2 and "--as" in done.stderr and connections(trap) == 0, done.stderr


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("credit_id", "CR-1\r\nX-Injected: yes", "credit_id: contains U+000D a carriage return (CR)"),
        ("invoice_id", "in_\u202e1", "invoice_id: contains U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("credit_id", "C" * 5000, "credit_id: is 5,000 characters long"),
    ],
)
def test_a_credit_file_with_a_hostile_id_names_the_field(trap, tmp_path, field, value, said):
    path = tmp_path / "credit.json"
    path.write_text(json.dumps(request(**{field: value})), encoding="utf-8")
    done = credit_cli(trap, path, "--as", "cindy.success")
    assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert connections(trap) == 0


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--charge", "ch_1\r\nX-Injected: yes", "charge_id: contains U+000D a carriage return (CR)"),
        ("--id", "R 1; drop", "refund_id: contains U+0020 a space"),
        ("--customer", "cus_\u200facme", "customer: contains U+200F RIGHT-TO-LEFT MARK"),
    ],
)
def test_a_refund_with_a_hostile_id_names_the_field_and_starts_nothing(trap, option, value, said):
    address = f"127.0.0.1:{trap.getsockname()[1]}"
    given = {"--charge": "ch_1", option: value}
    args = [a for pair in given.items() for a in pair] + ["--amount", "5.00", "--reason", "duplicate"]
    done = subprocess.run(
        [sys.executable, "-m", "starter.cli", "refund", *args, "--as", "olga.ops"],
        cwd=ROOT,
        env={**os.environ, "O2C_TEMPORAL_ADDRESS": address, "O2C_SANDBOX_URL": f"http://{address}"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "refund refused, no workflow started" in done.stderr, done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr
    assert connections(trap) == 0
