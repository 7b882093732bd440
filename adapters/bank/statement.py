"""A bank statement file as o2c takes it in: the format told from the bytes, the file
validated whole before anything is applied, and the receipts its credits are.

    statements = read_statements(data, filename="2024-01-31.xml")   # one per account section
    statement = read_statement(data)                                 # a file of one section
    receipts = receipts_of(statement, legal_entity="DE01")

A file holds one statement per account section (camt.053 `Stmt`, BAI2 `03`…`49`);
`read_statement` refuses a file of several, naming the line of the second, so a caller
that takes one statement never drops the rest silently. Every refusal is a
StatementError with the line and the reason, and refuses the whole file.
"""

from __future__ import annotations

import hashlib

from adapters.bank import bai2, camt053
from adapters.bank.bulk import bulk
from adapters.bank.errors import StatementError
from adapters.bank.receipts import receipts_of
from canonical.cash.models import BankStatement

# A statement of 100,000 entries is about 60 MB of camt.053; anything past this is refused
# before it is parsed.
MAX_FILE_BYTES = 128 * 1024 * 1024

__all__ = ["MAX_FILE_BYTES", "StatementError", "read_statement", "read_statements", "receipts_of", "sniff"]


def sniff(data: bytes) -> str:
    """ "camt053" or "bai2", from the first bytes of the file; StatementError otherwise."""
    head = data[:64].lstrip(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"<"):
        return "camt053"
    if head.startswith(b"01,"):
        return "bai2"
    raise StatementError(1, "neither a camt.053 XML document nor a BAI2 file (which starts with an 01 record)")


def read_statements(data: bytes, *, filename: str = "", max_bytes: int = MAX_FILE_BYTES) -> list[BankStatement]:
    """Every statement of the file, validated (see the format modules for the rules)."""
    try:
        if len(data) > max_bytes:
            raise StatementError(1, f"the file has {len(data)} bytes, more than the {max_bytes} accepted")
        if not data.strip():
            raise StatementError(1, "empty file")
        digest = hashlib.sha256(data).hexdigest()
        parse = camt053.parse if sniff(data) == "camt053" else bai2.parse
        with bulk():
            return parse(data, digest)
    except StatementError as exc:
        raise exc.named(filename) from None


def read_statement(data: bytes, *, filename: str = "", max_bytes: int = MAX_FILE_BYTES) -> BankStatement:
    """The one statement of a file of one account section."""
    statements = read_statements(data, filename=filename, max_bytes=max_bytes)
    if len(statements) > 1:
        second = statements[1]
        line = second.entries[0].line - 1 if second.entries else 1
        raise StatementError(
            _section_line(data, second) or line,
            f"the file holds {len(statements)} statements (accounts {', '.join(s.bank_account for s in statements)}); "
            "read it with read_statements",
            filename,
        )
    return statements[0]


def _section_line(data: bytes, statement: BankStatement) -> int:
    """Where the statement's section starts, for the message: the line naming its account."""
    needle = statement.bank_account.encode()
    at = data.find(b"03," + needle) if statement.format == "bai2" else data.find(needle)
    return data.count(b"\n", 0, at) + 1 if at >= 0 else 0
