"""What a payer wrote that may name an invoice, read out of a statement entry.

The rule is deliberately simple, so a treasurer can predict it:
1. structured creditor references (camt `Strd/CdtrRefInf/Ref`, e.g. SCOR) and referred
   document numbers (`Strd/RfrdDocInf/Nb`), as given;
2. the end-to-end id (camt `Refs/EndToEndId`), unless it is "NOTPROVIDED", and the BAI2
   customer reference;
3. in free text (camt `Ustrd`, BAI2 text): every invoice number of the form LETTERS-DIGITS
   ("INV-1001", "inv-1001" read as "INV-1001") and every Stripe invoice id ("in_" then
   letters and digits).
Each reference once, in that order. Matching decides which of them names an open invoice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# An invoice number (two to ten letters, a hyphen, digits: "INV-1001", "SI-20240131") or a
# Stripe invoice id, as Stripe prints it on the invoice the customer pays from; whole words.
_REFERENCE = re.compile(r"\b(?:([A-Za-z]{2,10}-[0-9]{1,20})|(in_[A-Za-z0-9]{6,64}))\b")

NOT_PROVIDED = "NOTPROVIDED"


def references_in_text(text: str) -> list[str]:
    """Invoice numbers (upper-cased) and Stripe invoice ids found in free text, in order."""
    if "-" not in text and "in_" not in text:
        return []
    return [number.upper() if number else stripe for number, stripe in _REFERENCE.findall(text)]


def collect(structured: Iterable[str], identifiers: Iterable[str], texts: Iterable[str]) -> list[str]:
    """The entry's references by the rule of this module: structured, then identifiers
    (end-to-end id, customer reference), then what the free texts name; each once."""
    out: list[str] = []
    seen: set[str] = set()

    def add(ref: str) -> None:
        ref = ref.strip()
        if ref and ref.upper() != NOT_PROVIDED and ref not in seen:
            seen.add(ref)
            out.append(ref)

    for ref in structured:
        add(ref)
    for ref in identifiers:
        add(ref)
    for text in texts:
        for ref in references_in_text(text):
            add(ref)
    return out
