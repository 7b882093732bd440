"""The stand-in bank: writes camt.053 (.02, .08) and BAI2 statement files for a period,
with balances, control totals and counts as a bank writes them.

    from sandbox.bank import Account, Entry, StatementFile, write_statement
    data = write_statement(StatementFile("bai2", date(2024, 1, 31), [Account("123456789", "USD", Decimal(0), entries)]))

`write_statement` runs in-process (the benchmarks make 100,000-entry files with it); the
HTTP endpoint `POST /bank/v1/statements` (sandbox/bank/api.py) takes the same as JSON.
"""

from sandbox.bank.kinds import combined, cross_entity, duplicate_of, exact, partial, unknown_payer
from sandbox.bank.writer import FORMATS, Account, Entry, StatementFile, write_statement

__all__ = [
    "FORMATS",
    "Account",
    "Entry",
    "StatementFile",
    "combined",
    "cross_entity",
    "duplicate_of",
    "exact",
    "partial",
    "unknown_payer",
    "write_statement",
]
