"""Statement files as a bank writes them: camt.053.001.02, camt.053.001.08 and BAI2.

The writer is faithful rather than clever: the same structure o2c's parser reads
(PROTOCOLS.md "Bank statements"), closing balance = opening + booked credits - booked
debits, camt `TxsSummry` over every entry, BAI2 control totals (the algebraic sum of the
`03` and `16` amounts) and record counts (physical records, `88`s included) at each of
account, group and file. One camt `Ntry` or BAI2 record a line, so a line number in an
error names one entry.

It takes plain values and imports nothing of o2c: a stand-in sharing o2c's code could
agree with o2c for the wrong reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from sandbox.currency import minor_unit

FORMATS = ("camt.053.001.02", "camt.053.001.08", "bai2")
NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:{}"

# The longest BAI2 physical record the writer makes before it continues a text in an 88.
BAI2_RECORD_LENGTH = 80


@dataclass(frozen=True)
class Entry:
    """One booked line of the statement. The caller chooses references and amounts; a
    receipt is just a credit entry."""

    amount: Decimal  # positive; `credit` says which way
    credit: bool = True
    payer_name: str = ""  # camt Dbtr (Cdtr for a debit); BAI2 "ORIG CO NAME:"
    payer_account: str = ""  # camt DbtrAcct IBAN; BAI2 "ORIG ID:"
    remittance: str = ""  # camt Ustrd; BAI2 text
    end_to_end_id: str = ""  # camt Refs/EndToEndId
    bank_reference: str = ""  # camt AcctSvcrRef; BAI2 bank reference; made up when empty
    structured_reference: str = ""  # camt Strd/CdtrRefInf (SCOR)
    customer_reference: str = ""  # BAI2 customer reference
    type_code: str = ""  # BAI2 type code; camt "DOMAIN/FAMILY/SUBFAMILY"
    value_date: date | None = None
    reversal: bool = False  # camt RvslInd
    status: str = "BOOK"  # camt Sts: BOOK, PDNG, INFO

    def to_json(self) -> dict[str, Any]:
        """The entry as `POST /bank/v1/statements` takes it."""
        out: dict[str, Any] = {"amount": str(self.amount), "credit": self.credit}
        for name in (
            "payer_name",
            "payer_account",
            "remittance",
            "end_to_end_id",
            "bank_reference",
            "structured_reference",
            "customer_reference",
            "type_code",
        ):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.value_date:
            out["value_date"] = self.value_date.isoformat()
        if self.reversal:
            out["reversal"] = True
        if self.status != "BOOK":
            out["status"] = self.status
        return out


@dataclass(frozen=True)
class Account:
    """One account section of the file: camt `Stmt`, BAI2 `03`…`49`."""

    account: str  # IBAN (camt) or account number
    currency: str
    opening_balance: Decimal
    entries: Sequence[Entry] = ()
    statement_id: str = ""  # camt Stmt/Id; "<date>-<file id>-<n>" when empty


@dataclass(frozen=True)
class StatementFile:
    format: str  # one of FORMATS
    day: date  # the period: booking date (camt), as-of date (BAI2)
    accounts: Sequence[Account] = field(default_factory=tuple)
    file_id: str = "1"  # camt MsgId suffix; BAI2 file identification number
    created_at: datetime | None = None  # the morning after the period when empty
    sender: str = "122000661"  # BAI2 sender (the bank's routing number)
    receiver: str = "O2C"


def _minor(amount: Decimal, currency: str) -> int:
    exponent = minor_unit(currency)
    scaled = amount.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more decimals than {currency} allows")
    return int(scaled)


def _decimal(minor: int, currency: str) -> str:
    exponent = minor_unit(currency)
    return f"{Decimal(minor).scaleb(-exponent):.{exponent}f}"


def _reference(statement: StatementFile, account_index: int, entry_index: int) -> str:
    return f"B{statement.day:%y%m%d}{account_index + 1:02d}{entry_index + 1:07d}"


def _created(statement: StatementFile) -> datetime:
    if statement.created_at:
        return statement.created_at
    return datetime.combine(statement.day + timedelta(days=1), time(6, 0))


def _balances(account: Account) -> tuple[int, int, int, int, int, int]:
    """Opening, closing, booked credits and debits (minor units) and their counts."""
    opening = _minor(account.opening_balance, account.currency)
    credits = debits = credit_count = debit_count = 0
    for entry in account.entries:
        if entry.status != "BOOK":
            continue
        minor = _minor(entry.amount, account.currency)
        if minor <= 0:
            raise ValueError("an entry's amount must be positive; `credit` says which way it goes")
        if entry.credit:
            credits += minor
            credit_count += 1
        else:
            debits += minor
            debit_count += 1
    return opening, opening + credits - debits, credits, debits, credit_count, debit_count


# -- camt.053 ----------------------------------------------------------------------------


def _x(text: str) -> str:
    return escape(text, {'"': "&quot;"})


def _camt_balance(kind: str, minor: int, currency: str, day: date) -> str:
    indicator = "CRDT" if minor >= 0 else "DBIT"
    return (
        f"<Bal><Tp><CdOrPrtry><Cd>{kind}</Cd></CdOrPrtry></Tp>"
        f'<Amt Ccy="{currency}">{_decimal(abs(minor), currency)}</Amt>'
        f"<CdtDbtInd>{indicator}</CdtDbtInd><Dt><Dt>{day.isoformat()}</Dt></Dt></Bal>\n"
    )


def _camt_entry(entry: Entry, reference: str, currency: str, day: date, v08: bool) -> str:
    status = f"<Sts><Cd>{_x(entry.status)}</Cd></Sts>" if v08 else f"<Sts>{_x(entry.status)}</Sts>"
    code = entry.type_code or ("PMNT/RCDT/ESCT" if entry.credit else "PMNT/ICDT/ESCT")
    domain, family, sub = [*code.split("/"), "", "", ""][:3]
    party, party_account = ("Dbtr", "DbtrAcct") if entry.credit else ("Cdtr", "CdtrAcct")
    parties = ""
    if entry.payer_name:
        name = f"<Nm>{_x(entry.payer_name)}</Nm>"
        parties += f"<{party}><Pty>{name}</Pty></{party}>" if v08 else f"<{party}>{name}</{party}>"
    if entry.payer_account:
        parties += f"<{party_account}><Id><IBAN>{_x(entry.payer_account)}</IBAN></Id></{party_account}>"
    remittance = ""
    if entry.remittance:
        remittance += f"<Ustrd>{_x(entry.remittance)}</Ustrd>"
    if entry.structured_reference:
        remittance += (
            "<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp>"
            f"<Ref>{_x(entry.structured_reference)}</Ref></CdtrRefInf></Strd>"
        )
    details = (
        f"<NtryDtls><TxDtls><Refs><EndToEndId>{_x(entry.end_to_end_id or 'NOTPROVIDED')}</EndToEndId></Refs>"
        + (f"<RltdPties>{parties}</RltdPties>" if parties else "")
        + (f"<RmtInf>{remittance}</RmtInf>" if remittance else "")
        + "</TxDtls></NtryDtls>"
    )
    return (
        f'<Ntry><Amt Ccy="{currency}">{_decimal(_minor(entry.amount, currency), currency)}</Amt>'
        f"<CdtDbtInd>{'CRDT' if entry.credit else 'DBIT'}</CdtDbtInd>"
        + ("<RvslInd>true</RvslInd>" if entry.reversal else "")
        + f"{status}<BookgDt><Dt>{day.isoformat()}</Dt></BookgDt>"
        f"<ValDt><Dt>{(entry.value_date or day).isoformat()}</Dt></ValDt>"
        f"<AcctSvcrRef>{_x(reference)}</AcctSvcrRef>"
        f"<BkTxCd><Domn><Cd>{_x(domain)}</Cd><Fmly><Cd>{_x(family)}</Cd><SubFmlyCd>{_x(sub)}</SubFmlyCd></Fmly>"
        f"</Domn></BkTxCd>{details}</Ntry>\n"
    )


def _camt(statement: StatementFile) -> bytes:
    version = statement.format.removeprefix("camt.")
    v08 = statement.format.endswith(".08")
    created = _created(statement).isoformat(timespec="seconds")
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<Document xmlns="{NAMESPACE.format("camt." + version)}"><BkToCstmrStmt>\n',
        f"<GrpHdr><MsgId>MSG-{_x(statement.file_id)}-{statement.day:%Y%m%d}</MsgId><CreDtTm>{created}</CreDtTm></GrpHdr>\n",
    ]
    for index, account in enumerate(statement.accounts):
        opening, closing, *_ = _balances(account)
        currency = account.currency
        statement_id = account.statement_id or f"{statement.day:%Y%m%d}-{statement.file_id}-{index + 1}"
        parts.append(
            f"<Stmt><Id>{_x(statement_id)}</Id><CreDtTm>{created}</CreDtTm>"
            f"<Acct><Id><IBAN>{_x(account.account)}</IBAN></Id><Ccy>{currency}</Ccy></Acct>\n"
        )
        parts.append(_camt_balance("OPBD", opening, currency, statement.day))
        parts.append(_camt_balance("CLBD", closing, currency, statement.day))
        all_minor = [_minor(e.amount, currency) for e in account.entries]
        credit_minor = [m for m, e in zip(all_minor, account.entries, strict=True) if e.credit]
        debit_minor = [m for m, e in zip(all_minor, account.entries, strict=True) if not e.credit]
        if account.entries:
            parts.append(
                "<TxsSummry>"
                f"<TtlNtries><NbOfNtries>{len(all_minor)}</NbOfNtries><Sum>{_decimal(sum(all_minor), currency)}</Sum></TtlNtries>"
                f"<TtlCdtNtries><NbOfNtries>{len(credit_minor)}</NbOfNtries><Sum>{_decimal(sum(credit_minor), currency)}</Sum></TtlCdtNtries>"
                f"<TtlDbtNtries><NbOfNtries>{len(debit_minor)}</NbOfNtries><Sum>{_decimal(sum(debit_minor), currency)}</Sum></TtlDbtNtries>"
                "</TxsSummry>\n"
            )
        for n, entry in enumerate(account.entries):
            reference = entry.bank_reference or _reference(statement, index, n)
            parts.append(_camt_entry(entry, reference, currency, statement.day, v08))
        parts.append("</Stmt>\n")
    parts.append("</BkToCstmrStmt></Document>\n")
    return "".join(parts).encode()


# -- BAI2 --------------------------------------------------------------------------------


def _yymmdd(day: date) -> str:
    return f"{day:%y%m%d}"


def _bai2_text(entry: Entry) -> str:
    text = entry.remittance
    if entry.payer_name:
        originator = f"ORIG CO NAME:{entry.payer_name}"
        if entry.payer_account:
            originator += f" ORIG ID:{entry.payer_account}"
        text = f"{originator} CO ENTRY DESCR:{text}" if text else originator
    return text


def _bai2_detail(entry: Entry, reference: str, currency: str) -> list[str]:
    """The 16 record and the 88s its text runs into: each physical record at most
    BAI2_RECORD_LENGTH characters where the words allow, the text broken at spaces (the
    reader joins the pieces with one)."""
    for value in (reference, entry.customer_reference, entry.type_code):
        if "," in value or "/" in value:
            raise ValueError(f"{value!r}: a BAI2 field holds neither ',' nor '/'")
    if "\n" in entry.remittance or "\n" in entry.payer_name:
        raise ValueError("a BAI2 text is one line")
    if entry.reversal or entry.status != "BOOK":
        raise ValueError("BAI2 has neither a reversal indicator nor entry statuses: only booked entries")
    type_code = entry.type_code or ("165" if entry.credit else "495")
    funds = f"V,{_yymmdd(entry.value_date)}," if entry.value_date else "0"
    head = f"16,{type_code},{_minor(entry.amount, currency)},{funds},{reference},{entry.customer_reference},"
    text = _bai2_text(entry)
    if not text:
        return [head + "/"]
    records: list[str] = []
    current = head
    for word in text.split(" "):
        if current not in (head, "88,") and len(current) + 1 + len(word) > BAI2_RECORD_LENGTH:
            records.append(current)
            current = "88,"
        current += word if current in (head, "88,") else " " + word
    records.append(current)
    return records


def _bai2(statement: StatementFile) -> bytes:
    created = _created(statement)
    currencies = {account.currency for account in statement.accounts}
    group_currency = currencies.pop() if len(currencies) == 1 else ""
    lines = [
        f"01,{statement.sender},{statement.receiver},{_yymmdd(created.date())},{created:%H%M},{statement.file_id},,,2/",
        f"02,{statement.receiver},{statement.sender},1,{_yymmdd(statement.day)},2400,{group_currency},2/",
    ]
    group_total = 0
    for index, account in enumerate(statement.accounts):
        opening, closing, credits, debits, credit_count, debit_count = _balances(account)
        currency = account.currency
        account_lines = [
            f"03,{account.account},{currency},010,{opening},,,015,{closing},,,100,{credits},{credit_count},,"
            f"400,{debits},{debit_count},/"
        ]
        account_total = opening + closing + credits + debits
        for n, entry in enumerate(account.entries):
            reference = entry.bank_reference or _reference(statement, index, n)
            account_lines += _bai2_detail(entry, reference, currency)
            account_total += _minor(entry.amount, currency)
        account_lines.append(f"49,{account_total},{len(account_lines) + 1}/")
        lines += account_lines
        group_total += account_total
    lines.append(f"98,{group_total},{len(statement.accounts)},{len(lines)}/")  # 02 … 98, less the 01
    lines.append(f"99,{group_total},1,{len(lines) + 1}/")
    return ("\n".join(lines) + "\n").encode()


def write_statement(statement: StatementFile) -> bytes:
    """The statement file, in its format's bytes."""
    if statement.format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    if not statement.accounts:
        raise ValueError("a statement file needs at least one account")
    for account in statement.accounts:
        minor_unit(account.currency)
    if statement.format == "bai2":
        return _bai2(statement)
    return _camt(statement)
