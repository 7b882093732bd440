"""ISO 20022 camt.053 (BankToCustomerStatement), versions .001.02 and .001.08, read into
canonical statements.

The structure is PROTOCOLS.md "Bank statements"; the two versions differ where this
module reads them: `Sts` is a code (`<Sts>BOOK</Sts>`) in .02 and a choice
(`<Sts><Cd>BOOK</Cd></Sts>`) in .08; a party is `<Dbtr><Nm>` in .02 and `<Dbtr><Pty><Nm>`
in .08; `BkTxCd` is required in .02 only. The root namespace names the version and must be
exactly one of the two.

Reading is two passes over the bytes, so a 100,000-entry file takes seconds, not minutes:
1. defusedxml's expat parser with DTDs, entity declarations and external references
   forbidden (a billion-laughs or XXE file is refused here, before anything is built),
   checking the file is well-formed and noting the source line of every Stmt, Bal and Ntry;
2. ElementTree's C iterparse, building one entry at a time and clearing it.
An error inside an element is located once more, precisely, on the error path only.

Only booked entries (`Sts` BOOK) are statement entries: pending or informational ones do
not move the booked balance (OPBD/PRCD + booked credits - booked debits = CLBD). One
`Ntry` is one entry even when it batches several `TxDtls` (unverified for batch bookings:
their references and first payer are kept, the entry is not split).
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
import xml.parsers.expat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from adapters.bank import references
from adapters.bank.errors import StatementError
from adapters.bank.sections import Section, amount, currency, finish, iso_date, iso_datetime
from canonical.cash.models import BankStatement, StatementEntry, StatementFormat
from canonical.money import Money

NAMESPACES: dict[str, StatementFormat] = {
    "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02": StatementFormat.CAMT053_02,
    "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08": StatementFormat.CAMT053_08,
}

# ActiveOrHistoricCurrencyAndAmount: unsigned, at most 18 digits of which 5 decimals.
_AMOUNT = re.compile(r"[0-9]{1,18}(\.[0-9]{1,5})?")


_T = TypeVar("_T")


class _Fault(Exception):
    """An error inside an element, before its source line is known."""

    def __init__(self, path: tuple[str, ...], reason: str):
        super().__init__(reason)
        self.path = path
        self.reason = reason


@dataclass
class _Scan:
    """What the first pass learned: the version and the source lines of the elements that
    errors and entries point at, in document order."""

    format: StatementFormat
    namespace: str
    lines: dict[str, list[int]] = field(default_factory=dict)


class _NoTree:
    """A parser target that builds nothing: the first pass only checks and counts."""

    def close(self) -> None:
        return None


_WATCHED = ("Stmt", "Bal", "Ntry")

# The elements this module reads, by local name.
_ELEMENTS = [
    "GrpHdr",
    "Stmt",
    "Ntry",
    "Bal",
    "Id",
    "CreDtTm",
    "Acct",
    "IBAN",
    "Othr",
    "Ccy",
    "Tp",
    "CdOrPrtry",
    "Cd",
    "Prtry",
    "Amt",
    "CdtDbtInd",
    "Dt",
    "DtTm",
    "RvslInd",
    "Sts",
    "BookgDt",
    "ValDt",
    "AcctSvcrRef",
    "NtryRef",
    "BkTxCd",
    "Domn",
    "Fmly",
    "SubFmlyCd",
    "NtryDtls",
    "TxDtls",
    "Refs",
    "EndToEndId",
    "RltdPties",
    "Dbtr",
    "Cdtr",
    "Pty",
    "Nm",
    "DbtrAcct",
    "CdtrAcct",
    "RmtInf",
    "Ustrd",
    "Strd",
    "CdtrRefInf",
    "Ref",
    "RfrdDocInf",
    "Nb",
    "TxsSummry",
    "TtlNtries",
    "TtlCdtNtries",
    "TtlDbtNtries",
    "NbOfNtries",
    "Sum",
]


def _scan(data: bytes) -> _Scan:
    parser = DefusedXMLParser(target=_NoTree(), forbid_dtd=True, forbid_entities=True, forbid_external=True)
    expat = parser.parser
    expat.DefaultHandlerExpand = None  # nothing to build: let expat skip what is not watched
    found: list[_Scan] = []
    watch: dict[str, list[int]] = {}

    def first(name: str, attrs: Any) -> None:
        ns, _, local = name.rpartition("}")
        line = expat.CurrentLineNumber
        if local != "Document":
            raise StatementError(line, f"the root element is {local!r}, not a camt.053 Document")
        if ns not in NAMESPACES:
            raise StatementError(
                line,
                f"namespace {ns or '(none)'!r} is neither camt.053.001.02 nor camt.053.001.08",
            )
        scan = _Scan(NAMESPACES[ns], ns, {local: [] for local in _WATCHED})
        watch.update({f"{ns}}}{local}": scan.lines[local] for local in _WATCHED})
        found.append(scan)
        expat.StartElementHandler = rest

    get = watch.get

    def rest(name: str, attrs: Any) -> None:
        lines = get(name)
        if lines is not None:
            lines.append(expat.CurrentLineNumber)

    expat.StartElementHandler = first
    try:
        parser.feed(data)
        parser.close()
    except DefusedXmlException as exc:
        raise StatementError(expat.CurrentLineNumber, f"refused: {_hostile(exc)}") from None
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else expat.ErrorLineNumber
        raise StatementError(line, f"not well-formed XML: {exc.msg if hasattr(exc, 'msg') else exc}") from None
    if not found:
        raise StatementError(1, "no XML document")
    return found[0]


def _hostile(exc: DefusedXmlException) -> str:
    kind = type(exc).__name__
    if kind == "DTDForbidden":
        return "the file declares a DTD (entity expansion and external entities are not accepted)"
    if kind == "EntitiesForbidden":
        return "the file declares entities"
    if kind == "ExternalReferenceForbidden":
        return "the file references an external entity"
    return f"unsafe XML ({kind})"


def _locate(data: bytes, anchor: str, index: int, path: tuple[str, ...]) -> int:
    """The source line of the first element at `path` below the `index`-th `anchor`
    element (the anchor's own line when the path is empty or not found). The error path
    only: the file is known to be free of DTDs by now."""
    expat = xml.parsers.expat.ParserCreate(namespace_separator="}")
    seen = -1
    depth = 0  # depth below the anchor, 0 outside it
    matched = 0  # how many steps of `path` the current branch has matched
    anchor_line = 1
    result: list[int] = []

    class Done(Exception):
        pass

    def start(name: str, attrs: Any) -> None:
        nonlocal seen, depth, matched, anchor_line
        local = name.rpartition("}")[2]
        if depth:
            depth += 1
            if matched == depth - 2 and matched < len(path) and path[matched] == local:
                matched += 1
                if matched == len(path):
                    result.append(expat.CurrentLineNumber)
                    raise Done
            return
        if local == anchor:
            seen += 1
            if seen == index:
                anchor_line = expat.CurrentLineNumber
                if not path:
                    result.append(anchor_line)
                    raise Done
                depth = 1

    def end(name: str) -> None:
        nonlocal depth, matched
        if depth:
            if matched == depth - 1:
                matched = max(0, matched - 1)
            depth -= 1
            if depth == 0:
                raise Done

    expat.StartElementHandler = start
    expat.EndElementHandler = end
    try:
        expat.Parse(data, True)
    except Done:
        pass
    except xml.parsers.expat.ExpatError:
        pass
    return result[0] if result else anchor_line


@dataclass
class _Totals:
    """What the statement's own TxsSummry must agree with: every Ntry, booked or not
    (unverified: banks may count booked entries only; ours are all booked)."""

    count: int = 0
    total: Decimal = Decimal(0)
    credit_count: int = 0
    credit_total: Decimal = Decimal(0)
    debit_count: int = 0
    debit_total: Decimal = Decimal(0)


class _Reader:
    def __init__(self, data: bytes, scan: _Scan):
        self.data = data
        self.format = scan.format
        self.q = "{" + scan.namespace + "}"
        self.lines = scan.lines
        self.v02 = scan.format is StatementFormat.CAMT053_02
        self.group_created = ""  # GrpHdr/CreDtTm, for a Stmt without its own
        q = self.q
        self.t = {local: q + local for local in _ELEMENTS}

    # -- small readers ------------------------------------------------------------------

    def find(self, elem: ET.Element | None, *locals_: str) -> ET.Element | None:
        t = self.t
        for local in locals_:
            if elem is None:
                return None
            elem = elem.find(t[local])
        return elem

    def text(self, elem: ET.Element | None, *locals_: str) -> str:
        if elem is None:
            return ""
        t = self.t
        for local in locals_[:-1]:
            found = elem.find(t[local])
            if found is None:
                return ""
            elem = found
        value = elem.findtext(t[locals_[-1]])
        return value.strip() if value else ""

    def when(self, elem: ET.Element | None, path: tuple[str, ...], what: str) -> date | None:
        """A DateAndDateTimeChoice (`Dt` or `DtTm`), as a date."""
        holder = self.find(elem, *path)
        if holder is None:
            return None
        day = self.text(holder, "Dt")
        if day:
            return _in((*path, "Dt"), lambda: iso_date(day, 0, what))
        moment = self.text(holder, "DtTm")
        if moment:
            return _in((*path, "DtTm"), lambda: iso_datetime(moment, 0, what)).date()
        raise _Fault(path, f"{what} has neither Dt nor DtTm")

    def money(self, elem: ET.Element | None, path: tuple[str, ...], what: str) -> Money:
        node = self.find(elem, *path)
        if node is None:
            raise _Fault(path[:-1], f"{what} is missing")
        text = (node.text or "").strip()
        code = node.get("Ccy", "")
        if not code:
            raise _Fault(path, f"{what} has no Ccy")
        if not _AMOUNT.fullmatch(text):
            raise _Fault(path, f"{what} {text!r} is not an unsigned decimal amount")
        return _in(path, lambda: amount(text, code, 0, what))

    def credit(self, elem: ET.Element, path: tuple[str, ...]) -> bool:
        indicator = self.text(elem, *path)
        if indicator not in ("CRDT", "DBIT"):
            raise _Fault(path, f"CdtDbtInd is {indicator!r}, not CRDT or DBIT")
        return indicator == "CRDT"

    def party(self, tx: ET.Element, role: str) -> str:
        # .02: RltdPties/Dbtr/Nm; .08: RltdPties/Dbtr/Pty/Nm (Party40Choice).
        if self.v02:
            return self.text(tx, "RltdPties", role, "Nm")
        return self.text(tx, "RltdPties", role, "Pty", "Nm")

    def account_id(self, holder: ET.Element | None) -> str:
        return self.text(holder, "Id", "IBAN") or self.text(holder, "Id", "Othr", "Id")

    # -- an entry -----------------------------------------------------------------------

    def entry(self, ntry: ET.Element, line: int, totals: _Totals) -> StatementEntry | None:
        money = self.money(ntry, ("Amt",), "entry amount")
        credit = self.credit(ntry, ("CdtDbtInd",))
        totals.count += 1
        totals.total += money.amount
        if credit:
            totals.credit_count += 1
            totals.credit_total += money.amount
        else:
            totals.debit_count += 1
            totals.debit_total += money.amount
        reversal_text = self.text(ntry, "RvslInd")
        if reversal_text not in ("", "true", "false", "1", "0"):
            raise _Fault(("RvslInd",), f"RvslInd is {reversal_text!r}, not true or false")
        status = self.status(ntry)
        booked = self.when(ntry, ("BookgDt",), "booking date")
        valued = self.when(ntry, ("ValDt",), "value date")
        bank_code = self.bank_transaction_code(ntry)
        if status != "BOOK":
            return None  # pending or information only: not on the booked balance
        if booked is None:
            raise _Fault((), "booked entry without a booking date (BookgDt)")
        structured: list[str] = []
        identifiers: list[str] = []
        texts: list[str] = []
        payer_name = payer_account = tx_reference = ""
        role, account_role = ("Dbtr", "DbtrAcct") if credit else ("Cdtr", "CdtrAcct")
        details = self.find(ntry, "NtryDtls")
        for tx in details if details is not None else ():
            if tx.tag != self.t["TxDtls"]:
                continue
            identifiers.append(self.text(tx, "Refs", "EndToEndId"))
            tx_reference = tx_reference or self.text(tx, "Refs", "AcctSvcrRef")
            payer_name = payer_name or self.party(tx, role)
            payer_account = payer_account or self.account_id(self.find(tx, "RltdPties", account_role))
            remittance = self.find(tx, "RmtInf")
            if remittance is None:
                continue
            for part in remittance:
                if part.tag == self.t["Ustrd"]:
                    texts.append((part.text or "").strip())
                elif part.tag == self.t["Strd"]:
                    for info in part:
                        if info.tag == self.t["CdtrRefInf"]:
                            structured.append(self.text(info, "Ref"))
                        elif info.tag == self.t["RfrdDocInf"]:
                            structured.append(self.text(info, "Nb"))
        bank_reference = self.text(ntry, "AcctSvcrRef") or self.text(ntry, "NtryRef") or tx_reference
        return StatementEntry(
            line=line,
            amount=money,
            credit=credit,
            bank_reference=bank_reference,
            booked_on=booked,
            value_date=valued or booked,
            type_code=bank_code,
            payer_name=payer_name,
            payer_account=payer_account,
            references=references.collect(structured, identifiers, texts),
            remittance_text=" ".join(t for t in texts if t),
            reversal=reversal_text in ("true", "1"),
        )

    def status(self, ntry: ET.Element) -> str:
        sts = self.find(ntry, "Sts")
        if sts is None:
            raise _Fault((), "entry has no status (Sts)")
        if self.v02:
            if len(sts):
                raise _Fault(("Sts",), "Sts must be a code (<Sts>BOOK</Sts>) in camt.053.001.02")
            code = (sts.text or "").strip()
        else:
            code = self.text(sts, "Cd") or self.text(sts, "Prtry")
            if not code:
                raise _Fault(("Sts",), "Sts must hold <Cd> or <Prtry> in camt.053.001.08")
        if not code:
            raise _Fault(("Sts",), "entry status (Sts) is empty")
        return code

    def bank_transaction_code(self, ntry: ET.Element) -> str:
        code = self.find(ntry, "BkTxCd")
        if code is None:
            if self.v02:
                raise _Fault((), "entry has no bank transaction code (BkTxCd), required in camt.053.001.02")
            return ""
        domain = self.find(code, "Domn")
        if domain is not None:
            parts = (self.text(domain, "Cd"), self.text(domain, "Fmly", "Cd"), self.text(domain, "Fmly", "SubFmlyCd"))
            return "/".join(p for p in parts if p)
        return self.text(code, "Prtry", "Cd")

    # -- a statement --------------------------------------------------------------------

    def section(
        self, stmt: ET.Element, line: int, bal_lines: list[int], entries: list[StatementEntry], totals: _Totals
    ) -> Section:
        statement_key = self.text(stmt, "Id")
        if not statement_key:
            raise _Fault((), "statement without an Id")
        acct = self.find(stmt, "Acct")
        account = self.account_id(acct)
        if not account:
            raise _Fault(("Acct",), "statement account has neither an IBAN nor an Othr/Id")
        code = self.text(acct, "Ccy")
        if code:
            _in(("Acct", "Ccy"), lambda: currency(code, 0))
        created_text = self.text(stmt, "CreDtTm") or self.group_created
        if not created_text:
            raise _Fault(("CreDtTm",), "statement has no creation time (CreDtTm)")
        created = _in(("CreDtTm",), lambda: iso_datetime(created_text, 0, "creation time"))
        balances: dict[str, tuple[Money, int]] = {}
        for n, bal in enumerate(stmt.findall(self.t["Bal"])):
            bal_line = bal_lines[n] if n < len(bal_lines) else line
            try:
                kind = self.text(bal, "Tp", "CdOrPrtry", "Cd") or self.text(bal, "Tp", "CdOrPrtry", "Prtry")
                value = self.money(bal, ("Amt",), f"{kind or 'balance'} amount")
                if not self.credit(bal, ("CdtDbtInd",)):
                    value = -value
                self.when(bal, ("Dt",), f"{kind} balance date")
            except _Fault as fault:
                raise StatementError(bal_line, fault.reason) from None
            if kind in balances and kind in ("OPBD", "PRCD", "CLBD"):
                raise StatementError(bal_line, f"balance {kind} given twice (first on line {balances[kind][1]})")
            balances[kind] = (value, bal_line)
        opening = balances.get("OPBD") or balances.get("PRCD")
        closing = balances.get("CLBD")
        if opening is None:
            raise StatementError(line, f"statement {statement_key} has no opening booked balance (OPBD or PRCD)")
        if closing is None:
            raise StatementError(line, f"statement {statement_key} has no closing booked balance (CLBD)")
        code = code or opening[0].currency
        for value, bal_line in (opening, closing):
            if value.currency != code:
                raise StatementError(bal_line, f"balance in {value.currency} on an account kept in {code}")
        self.check_summary(stmt, totals)
        return Section(
            format=self.format,
            line=line,
            account=account,
            currency=code,
            key=statement_key,
            created_at=created,
            opening=opening[0],
            closing=closing[0],
            closing_line=closing[1],
            entries=entries,
        )

    def check_summary(self, stmt: ET.Element, totals: _Totals) -> None:
        summary = self.find(stmt, "TxsSummry")
        if summary is None:
            return
        for part, count, total in (
            ("TtlNtries", totals.count, totals.total),
            ("TtlCdtNtries", totals.credit_count, totals.credit_total),
            ("TtlDbtNtries", totals.debit_count, totals.debit_total),
        ):
            given = self.find(summary, part)
            if given is None:
                continue
            number = self.text(given, "NbOfNtries")
            if number and (not number.isdigit() or int(number) != count):
                raise _Fault(("TxsSummry", part, "NbOfNtries"), f"{part} counts {number} entries, the file has {count}")
            stated = self.text(given, "Sum")
            if stated and (not _AMOUNT.fullmatch(stated) or Decimal(stated) != total):
                raise _Fault(("TxsSummry", part, "Sum"), f"{part} sums to {stated}, the entries to {total}")

    # -- the file -----------------------------------------------------------------------

    def read(self, digest: str) -> list[BankStatement]:
        t = self.t
        ntry_tag, stmt_tag, grp_tag = t["Ntry"], t["Stmt"], t["GrpHdr"]
        ntry_lines, stmt_lines, bal_lines = self.lines["Ntry"], self.lines["Stmt"], self.lines["Bal"]
        n_ntry = n_stmt = n_bal = 0
        entries: list[StatementEntry] = []
        totals = _Totals()
        sections: list[Section] = []
        for _, elem in ET.iterparse(io.BytesIO(self.data), events=("end",)):
            tag = elem.tag
            if tag == ntry_tag:
                try:
                    entry = self.entry(elem, ntry_lines[n_ntry], totals)
                except _Fault as fault:
                    raise StatementError(_locate(self.data, "Ntry", n_ntry, fault.path), fault.reason) from None
                if entry is not None:
                    entries.append(entry)
                n_ntry += 1
                elem.clear()
            elif tag == stmt_tag:
                own_bals = len(elem.findall(t["Bal"]))
                try:
                    sections.append(
                        self.section(elem, stmt_lines[n_stmt], bal_lines[n_bal : n_bal + own_bals], entries, totals)
                    )
                except _Fault as fault:
                    raise StatementError(_locate(self.data, "Stmt", n_stmt, fault.path), fault.reason) from None
                n_stmt += 1
                n_bal += own_bals
                entries = []
                totals = _Totals()
                elem.clear()
            elif tag == grp_tag:
                self.group_created = self.text(elem, "CreDtTm")
        if not sections:
            raise StatementError(1, "the document holds no statement (BkToCstmrStmt/Stmt)")
        return finish(sections, digest)


def _in(path: tuple[str, ...], check: Callable[[], _T]) -> _T:
    """Run one of the shared checks on a value found at `path`, its error located there."""
    try:
        return check()
    except StatementError as exc:
        raise _Fault(path, exc.reason) from None


def parse(data: bytes, digest: str = "") -> list[BankStatement]:
    """Every statement (`Stmt`) of a camt.053 file, validated; StatementError otherwise."""
    scan = _scan(data)
    return _Reader(data, scan).read(digest)
