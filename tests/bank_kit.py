"""Shared by the bank statement tests: the fixture files, and statements written by the
sandbox bank over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

FIXTURES = Path(__file__).parent / "fixtures" / "bank"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def bank_statement(sandbox: Any, body: dict[str, Any]) -> bytes:
    """The file the sandbox bank writes for `body` (POST /bank/v1/statements)."""
    response = httpx.post(f"{sandbox.bank_url}/statements", json=body, timeout=30)
    assert response.status_code == 201, response.text
    assert response.headers["Statement-Id"].startswith("stmt_")
    return response.content


def line_of(data: bytes, needle: bytes, occurrence: int = 1) -> int:
    """The 1-based line of the `occurrence`-th `needle` in the file."""
    at = -1
    for _ in range(occurrence):
        at = data.index(needle, at + 1)
    return data.count(b"\n", 0, at) + 1
