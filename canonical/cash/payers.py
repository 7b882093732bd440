"""Who a payer is: the payer directory that maps a bank payer to the one customer it belongs to.

A bank tells us the payer's account (IBAN or account number) when it can, and a name that the
payer's bank typed. The account is the strong key: it is learned from receipts that were
applied to a customer. The name is the weak one: it is compared normalised (case, accents,
punctuation and legal-form suffixes do not count), and a name that two customers share maps
to nobody, because guessing between them would apply cash to the wrong customer.

OpenItemBook.payers carries the directory as a flat dict of keys built by `account_key` and
`name_key`; an empty customer under a key means "ambiguous: nobody".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from canonical.cash.models import Receipt

ACCOUNT_PREFIX = "account:"
NAME_PREFIX = "name:"

# Legal-form words that banks keep or drop at will: "ACME GMBH" and "Acme" are one payer.
_LEGAL_FORMS = frozenset(
    {
        "ab", "ag", "as", "bv", "co", "company", "corp", "corporation", "gmbh", "inc",
        "incorporated", "kg", "limited", "llc", "llp", "lp", "ltd", "nv", "oy", "plc",
        "pty", "sa", "sarl", "sas", "spa", "srl", "the",
    }
)  # fmt: skip
_NOT_WORD = re.compile(r"[^0-9a-z]+")


@lru_cache(maxsize=65_536)  # a statement names the same payers over and over
def normalise_name(name: str) -> str:
    """Lower case, accents and punctuation removed, legal forms dropped, single spaces."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    words = [word for word in _NOT_WORD.split(plain) if word and word not in _LEGAL_FORMS]
    return " ".join(words)


def normalise_account(account: str) -> str:
    """An IBAN or account number without spaces, upper case ("de89 3704..." is "DE893704...")."""
    return "".join(account.split()).upper()


def account_key(account: str) -> str:
    return ACCOUNT_PREFIX + normalise_account(account)


def name_key(name: str) -> str:
    return NAME_PREFIX + normalise_name(name)


def payer_keys(receipt: Receipt) -> list[str]:
    """The directory keys a receipt's payer may be known under (account first)."""
    keys = []
    if normalise_account(receipt.payer_account):
        keys.append(account_key(receipt.payer_account))
    if normalise_name(receipt.payer_name):
        keys.append(name_key(receipt.payer_name))
    return keys


@dataclass(frozen=True)
class PayerDirectory:
    """Payer account → customer, and normalised payer name → customer ("" when ambiguous)."""

    accounts: Mapping[str, str] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def learn(cls, known: Iterable[tuple[str, str, str]]) -> PayerDirectory:
        """Build from (payer account, payer name, customer) facts. An account or a name seen
        for two customers maps to nobody."""
        accounts: dict[str, str] = {}
        names: dict[str, str] = {}
        for account, name, customer in known:
            if not customer:
                continue
            for table, key in ((accounts, normalise_account(account)), (names, normalise_name(name))):
                if key:
                    table[key] = customer if table.get(key, customer) == customer else ""
        return cls(accounts=accounts, names=names)

    @classmethod
    def from_payers(cls, payers: Mapping[str, str]) -> PayerDirectory:
        """Read OpenItemBook.payers."""
        accounts = {k[len(ACCOUNT_PREFIX) :]: v for k, v in payers.items() if k.startswith(ACCOUNT_PREFIX)}
        names = {k[len(NAME_PREFIX) :]: v for k, v in payers.items() if k.startswith(NAME_PREFIX)}
        return cls(accounts=accounts, names=names)

    def to_payers(self) -> dict[str, str]:
        """The flat form OpenItemBook.payers carries."""
        flat = {ACCOUNT_PREFIX + k: v for k, v in self.accounts.items()}
        flat.update({NAME_PREFIX + k: v for k, v in self.names.items()})
        return flat

    def customer_of(self, receipt: Receipt) -> tuple[str, str]:
        """The customer the receipt's payer is, and how we know ("" and why not, when unknown).
        The source's own customer (Stripe knows it) comes first, then the payer account, then
        the normalised name."""
        if receipt.customer_hint:
            return receipt.customer_hint, "the payment's customer"
        account = normalise_account(receipt.payer_account)
        if account and self.accounts.get(account):
            return self.accounts[account], f"payer account {account}"
        name = normalise_name(receipt.payer_name)
        if name and name in self.names:
            customer = self.names[name]
            if customer:
                return customer, f"payer name {name!r}"
            return "", f"payer name {name!r} belongs to several customers"
        return "", "the payer maps to no customer"
