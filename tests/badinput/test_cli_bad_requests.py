"""Hostile request files at `o2c amend --file` / `o2c renew --file`, each in its own
process: exit code 2, a one-line reason on stderr, no traceback, and no connection to
Temporal or billing. Both point at a local port that drops every connection and counts it, so
any attempt to start something is seen (and would fail with another exit code)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canonical.models import AmendmentRequest
from canonical.renewal import RenewalRequest
from tests.badinput.kit import (
    amendment_dict,
    json_values,
    not_a_date,
    not_a_decimal,
    not_a_list,
    not_a_string,
    renewal_dict,
)

ROOT = Path(__file__).resolve().parents[2]
TODAY = date.today()


class Trap:
    """A local port that accepts and at once drops every connection, counting them: an
    attempt to reach Temporal or billing fails fast, and shows up in `count`."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.count = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def getsockname(self):
        return self.sock.getsockname()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            conn.close()


@pytest.fixture(scope="module")
def trap():
    running = Trap()
    yield running
    running.sock.close()


def connections(trap: Trap) -> int:
    seen, trap.count = trap.count, 0
    return seen


def run_cli(trap: Trap, command: str, path: Path) -> subprocess.CompletedProcess:
    address = f"127.0.0.1:{trap.getsockname()[1]}"
    env = {
        **os.environ,
        "O2C_TEMPORAL_ADDRESS": address,
        "O2C_SANDBOX_URL": f"http://{address}",
        "O2C_STRIPE_BASE_URL": f"http://{address}/stripe/v1",
        "O2C_HTTP_TIMEOUT_SECONDS": "2",
    }
    return subprocess.run(
        [sys.executable, "-m", "starter.cli", command, "--file", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


WRONG = {
    "effective_date": not_a_date,
    "new_term_start": not_a_date,
    "new_term_end": not_a_date,
    "lines": not_a_list.filter(lambda v: v is not None),
    "uplift_percent": not_a_decimal,
}


def one_wrong_field(model, base):
    required = sorted(name for name, field in model.model_fields.items() if field.is_required())
    return st.one_of(
        st.sampled_from(required).map(lambda f: {k: v for k, v in base.items() if k != f}),
        st.sampled_from(sorted(base)).flatmap(lambda f: WRONG.get(f, not_a_string).map(lambda v: {**base, f: v})),
    )


files = st.one_of(
    # not JSON, or JSON that is not an object
    st.text(max_size=40).filter(lambda t: not t.strip().startswith("{")),
    json_values.filter(lambda v: not isinstance(v, dict)).map(json.dumps),
    st.just(json.dumps(amendment_dict())[:-7]),  # truncated
    st.just("{" * 2000 + "}" * 2000),  # deep nesting
    st.dictionaries(st.text(max_size=8), json_values, max_size=4).map(json.dumps),
)


@settings(deadline=None, max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(["amend", "renew"]), data=st.data())
def test_a_bad_request_file_exits_2_with_a_reason_and_starts_nothing(trap, tmp_path_factory, command, data):
    model, base = (AmendmentRequest, amendment_dict()) if command == "amend" else (RenewalRequest, renewal_dict(TODAY))
    text = data.draw(st.one_of(files, one_wrong_field(model, base).map(json.dumps)))
    path = tmp_path_factory.mktemp("cli") / "request.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    done = run_cli(trap, command, path)
    assert done.returncode == 2, (text, done.stdout, done.stderr)
    assert done.stderr.startswith("o2c: ") and "Traceback" not in done.stderr, done.stderr
    assert "is not a valid" in done.stderr
    assert connections(trap) == 0


def test_an_unreadable_file_exits_2(trap, tmp_path):
    done = run_cli(trap, "amend", tmp_path / "missing.json")
    assert done.returncode == 2 and "cannot read" in done.stderr and connections(trap) == 0


def test_a_request_the_rules_refuse_exits_2_without_connecting(trap, tmp_path):
    path = tmp_path / "request.json"
    path.write_text(json.dumps(amendment_dict(currency="XXX")))
    done = run_cli(trap, "amend", path)
    reached = connections(trap)
    assert done.returncode == 2 and "unknown or unsupported currency" in done.stderr, done.stderr
    assert reached == 0


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"remaining_sp": {"seats": "1750.00"}}, "remaining_sp: Extra inputs are not permitted"),
        ({"remaining_ssp": {"seats": "-1"}}, "remaining SSP of seats must be a price not below zero"),
        ({"remaining_ssp": {"seats": "17.505"}}, "remaining SSP of seats has more decimals than USD allows"),
    ],
)
def test_an_amendments_remaining_ssp_misspelt_or_wrong_exits_2_without_connecting(trap, tmp_path, extra, reason):
    path = tmp_path / "request.json"
    path.write_text(json.dumps({**amendment_dict(), **extra}))
    done = run_cli(trap, "amend", path)
    reached = connections(trap)
    assert done.returncode == 2 and reason in done.stderr, done.stderr
    assert reached == 0


# -- files that are not text, too large, or wrong many times over ------------------------------


def run_cli_stdin(trap: Trap, command: str, data: bytes) -> subprocess.CompletedProcess:
    address = f"127.0.0.1:{trap.getsockname()[1]}"
    env = {**os.environ, "O2C_TEMPORAL_ADDRESS": address, "O2C_SANDBOX_URL": f"http://{address}"}
    return subprocess.run(
        [sys.executable, "-m", "starter.cli", command, "--file", "-"],
        cwd=ROOT,
        env=env,
        input=data,
        capture_output=True,
        timeout=30,
    )


def said_once(done: subprocess.CompletedProcess) -> str:
    """The one line a refusal prints: exit 2, on stderr, no traceback."""
    err = done.stderr if isinstance(done.stderr, str) else done.stderr.decode()
    assert done.returncode == 2, err
    assert err.startswith("o2c: ") and "Traceback" not in err, err
    return err


NOT_UTF8 = [
    json.dumps(amendment_dict(requested_by="J\u00f6rg"), ensure_ascii=False).encode("latin-1"),
    json.dumps(amendment_dict()).encode("utf-16"),
    b'{"amendment_id": "\xff\xfe"}',
    b"\xed\xa0\x80",  # a lone surrogate, encoded
]


@pytest.mark.parametrize("data", NOT_UTF8, ids=["latin-1", "utf-16", "invalid-bytes", "surrogate"])
def test_a_file_that_is_not_utf8_is_one_clear_error(trap, tmp_path, data):
    path = tmp_path / "request.json"
    path.write_bytes(data)
    for done in (run_cli(trap, "amend", path), run_cli_stdin(trap, "amend", data)):
        err = said_once(done)
        assert "is not a valid amendment request: not UTF-8 text (byte 0x" in err and err.count("\n") == 1, err
    assert connections(trap) == 0


def test_a_file_larger_than_a_request_may_be_is_refused_unread(trap, tmp_path):
    path = tmp_path / "request.json"
    lines = [{"product": f"p{i}", "quantity": 1, "unit_price": "1.00"} for i in range(10_000)]
    path.write_text(json.dumps(amendment_dict(lines=lines)))
    assert path.stat().st_size > 256 * 1024
    err = said_once(run_cli(trap, "amend", path))
    assert "larger than 262,144 bytes (256 KB), the most a request may be" in err
    assert connections(trap) == 0


def test_the_same_problem_on_every_line_is_said_once_with_the_count(trap, tmp_path):
    path = tmp_path / "request.json"
    lines = [{"product": f"p{i}", "quantity": 1, "unit_price": "1.00", "tax_exempt": True} for i in range(200)]
    path.write_text(json.dumps(amendment_dict(lines=lines, skip_approval=True)))
    err = said_once(run_cli(trap, "amend", path))
    assert "lines.*.tax_exempt: Extra inputs are not permitted (200 times)" in err
    assert "skip_approval: Extra inputs are not permitted" in err and err.count("tax_exempt") == 1, err
    assert connections(trap) == 0


def test_the_same_rule_broken_on_every_line_is_said_once_with_the_count(trap, tmp_path):
    path = tmp_path / "request.json"
    path.write_text(json.dumps(amendment_dict(lines=[{"product": "seats", "quantity": -1, "unit_price": "1"}] * 200)))
    err = said_once(run_cli(trap, "amend", path))
    assert "  - quantity of seats is -1; it cannot be below zero (200 times)\n" in err
    assert "  - product seats appears twice (199 times)\n" in err
    assert err.count("\n") == 3, err
    assert connections(trap) == 0


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("amendment_id", "A-1\r\nX-Injected: yes", "amendment_id: contains U+000D a carriage return (CR)"),
        ("contract_id", "C-\u200f100", "contract_id: contains U+200F RIGHT-TO-LEFT MARK"),
        ("amendment_id", "A" * 5000, "amendment_id: is 5,000 characters long"),
    ],
)
def test_a_hostile_id_in_a_file_is_refused_by_name(trap, tmp_path, field, value, said):
    path = tmp_path / "request.json"
    path.write_text(json.dumps(amendment_dict(**{field: value})))
    err = said_once(run_cli(trap, "amend", path))
    assert said in err and err.count("\n") == 1, err
    assert connections(trap) == 0
