"""`o2c revenue post|rollforward|rpo` refuse bad input before anything starts or is read:
exit code 2, a one-line reason, no connection to Temporal, the ERP or billing (all pointed at
a port that counts every connection)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from canonical.revenue.posting import posting_problems
from tests.badinput.test_cli_bad_requests import Trap, connections

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trap():
    running = Trap()
    yield running
    running.sock.close()


def run_cli(trap: Trap, *args: str, entities: Path | None = None) -> subprocess.CompletedProcess:
    address = f"127.0.0.1:{trap.getsockname()[1]}"
    env = {
        **os.environ,
        **({"O2C_LEGAL_ENTITIES_FILE": str(entities)} if entities else {}),
        "O2C_TEMPORAL_ADDRESS": address,
        "O2C_SANDBOX_URL": f"http://{address}",
        "O2C_STRIPE_BASE_URL": f"http://{address}/stripe/v1",
        "O2C_NETSUITE_BASE_URL": f"http://{address}/netsuite/services/rest",
        "O2C_HTTP_TIMEOUT_SECONDS": "2",
    }
    return subprocess.run(
        [sys.executable, "-m", "starter.cli", "revenue", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["post", "--entity", "XX01", "--period", "2026-05"], "unknown legal entity 'XX01' (known: US01)"),
        (["post", "--entity", "US01", "--period", "2026-13"], "a period is YYYY-MM, got '2026-13'"),
        (["post", "--entity", "US01", "--period", "2026-5"], "a period is YYYY-MM"),
        (["post", "--entity", "US01", "--period", "2999-01"], "2999-01 has not ended yet"),
        (["rollforward", "--entity", "XX01"], "unknown legal entity 'XX01'"),
        (["rollforward", "--entity", "US01", "--from", "2026-11", "--to", "2026-09"], "is after --to"),
        (["rollforward", "--entity", "US01", "--to", "November"], "a period is YYYY-MM"),
        (["rpo", "--entity", "US01", "--as-of", "2026-02-30"], "--as-of is a date"),
        (["rpo", "--entity", "XX01"], "unknown legal entity"),
    ],
)
def test_bad_input_exits_2_with_the_reason_and_reaches_nothing(trap, args, reason):
    done = run_cli(trap, *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("o2c: ") and "Traceback" not in done.stderr, done.stderr
    assert reason in done.stderr
    assert connections(trap) == 0


def test_the_month_a_posting_may_cover_has_ended():
    assert posting_problems("2026-11", entity="DE01", entities=["DE01"], today=date(2026, 12, 1)) == []
    assert posting_problems("2026-11", entity="DE01", entities=["DE01"], today=date(2026, 11, 30)) == [
        "2026-11 has not ended yet: its revenue is posted after 2026-11-30"
    ]


def test_a_roll_forward_of_an_entity_on_sap_reads_the_sap_ledger(trap, tmp_path):
    """DE01 books in SAP: its roll-forward asks SAP's item cube for its billings, not NetSuite."""
    entities = tmp_path / "entities.json"
    entities.write_text(
        json.dumps(
            [
                {"code": "US01", "company_code": "US01", "functional_currency": "USD", "erp_subsidiary": "1"},
                {
                    "code": "DE01",
                    "company_code": "1010",
                    "functional_currency": "EUR",
                    "erp": "sap",
                    "erp_subsidiary": "1010",
                },
            ]
        )
    )
    done = run_cli(trap, "rollforward", "--entity", "DE01", entities=entities)
    assert connections(trap) >= 1
    assert done.returncode == 1 and "SAP" in done.stderr and "NetSuite" not in done.stderr, done.stderr
