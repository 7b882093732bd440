"""Bank statement files: ISO 20022 camt.053 (.001.02, .001.08) and BAI2, read into
canonical statements and receipts. See docs/bank-statements.md for the rules."""

from adapters.bank.errors import StatementError
from adapters.bank.receipts import receipts_of
from adapters.bank.statement import MAX_FILE_BYTES, read_statement, read_statements

__all__ = ["MAX_FILE_BYTES", "StatementError", "read_statement", "read_statements", "receipts_of"]
