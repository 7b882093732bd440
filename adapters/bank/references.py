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

# An invoice number: two to ten letters, a hyphen, digits ("INV-1001", "SI-20240131").
_INVOICE_NUMBER = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2,10}-[0-9]{1,20})(?![A-Za-z0-9])")
# A Stripe invoice id, as Stripe prints it on the invoice the customer pays from.
_STRIPE_INVOICE = re.compile(r"(?<![A-Za-z0-9_])(in_[A-Za-z0-9]{6,64})(?![A-Za-z0-9])")

NOT_PROVIDED = "NOTPROVIDED"


def references_in_text(text: str) -> list[str]:
    """Invoice numbers (upper-cased) and Stripe invoice ids found in free text, in order."""
    if not text:
        return []
    found: list[tuple[int, str]] = [(m.start(), m.group(1).upper()) for m in _INVOICE_NUMBER.finditer(text)]
    found += [(m.start(), m.group(1)) for m in _STRIPE_INVOICE.finditer(text)]
    return [ref for _, ref in sorted(found)]


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
