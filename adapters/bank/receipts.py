"""The receipts a statement's credits are, for cash application.

A receipt is a booked credit entry that is not a reversal; debits and reversals move the
balance but are not money a customer paid. Its id is "<camt053|bai2>:<bank account>:<bank
reference>", so the same statement imported twice yields the same receipts.
"""

from __future__ import annotations

from adapters.bank.bulk import bulk
from canonical.cash.models import BankStatement, Receipt, ReceiptSource, StatementFormat

_SOURCE = {
    StatementFormat.CAMT053_02: ReceiptSource.CAMT053,
    StatementFormat.CAMT053_08: ReceiptSource.CAMT053,
    StatementFormat.BAI2: ReceiptSource.BAI2,
}


def receipt_id(source: ReceiptSource, bank_account: str, bank_reference: str) -> str:
    return f"{source.value}:{bank_account}:{bank_reference}"


def receipts_of(statement: BankStatement, *, legal_entity: str) -> list[Receipt]:
    """The statement's credit entries (not reversals) as receipts of `legal_entity`, the
    entity whose bank account received them."""
    if not legal_entity:
        raise ValueError("legal_entity is required: the entity whose account received the money")
    source = _SOURCE[statement.format]
    with bulk():
        return _receipts(statement, source, legal_entity)


def _receipts(statement: BankStatement, source: ReceiptSource, legal_entity: str) -> list[Receipt]:
    return [
        Receipt(
            receipt_id=receipt_id(source, statement.bank_account, entry.bank_reference),
            source=source,
            legal_entity=legal_entity,
            amount=entry.amount,
            value_date=entry.value_date,
            bank_reference=entry.bank_reference,
            statement_id=statement.statement_id,
            bank_account=statement.bank_account,
            payer_name=entry.payer_name,
            payer_account=entry.payer_account,
            references=entry.references,
            remittance_text=entry.remittance_text,
        )
        for entry in statement.entries
        if entry.credit and not entry.reversal
    ]
