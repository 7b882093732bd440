"""Cash matching: each rule of DOMAIN.md, the exceptions, the batch order, and the invariant."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from canonical.cash.matching import (
    MAX_COMBINATION_ITEMS,
    MAX_SUGGESTIONS,
    BookView,
    Candidates,
    match_receipt,
    match_statement,
    reference_keys,
)
from canonical.cash.models import ExceptionKind, MatchRule, OpenItem, OpenItemBook, Receipt, ReceiptSource
from canonical.cash.payers import PayerDirectory, account_key, name_key, normalise_name, payer_keys
from canonical.money import Money


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def item(
    invoice_id: str,
    balance: str,
    *,
    customer: str = "cus_acme",
    entity: str = "US01",
    total: str | None = None,
    currency: str = "USD",
    due: int = 0,
) -> OpenItem:
    return OpenItem(
        invoice_id=invoice_id,
        number=f"N-{invoice_id}",
        customer=customer,
        legal_entity=entity,
        total=Money.of(total or balance, currency),
        balance=Money.of(balance, currency),
        due_on=date(2026, 1, 1) + timedelta(days=due),
        erp_document=f"erp-{invoice_id}",
    )


def receipt(
    amount: str,
    *refs: str,
    rid: str = "r1",
    entity: str = "US01",
    payer: str = "",
    account: str = "",
    currency: str = "USD",
) -> Receipt:
    return Receipt(
        receipt_id=f"camt053:ACC:{rid}",
        source=ReceiptSource.CAMT053,
        legal_entity=entity,
        amount=Money.of(amount, currency),
        value_date=date(2026, 2, 1),
        bank_reference=rid,
        references=list(refs),
        payer_name=payer,
        payer_account=account,
    )


def check(match, r: Receipt) -> None:
    applied = sum((a.amount.minor for a in match.applications), 0)
    assert applied + match.unapplied.minor == r.amount.minor
    ids = [a.invoice_id for a in match.applications]
    assert len(ids) == len(set(ids))


# -- rule 1: references ---------------------------------------------------------------------


def test_exact_reference_by_number_applies_the_balance() -> None:
    r = receipt("100.00", "n-inv1")
    m = match_receipt(r, Candidates(referenced=[item("inv1", "100.00")]))
    assert m.rule is MatchRule.EXACT_REFERENCE
    assert [(a.invoice_id, a.amount, a.erp_document) for a in m.applications] == [("inv1", usd("100.00"), "erp-inv1")]
    assert m.unapplied == usd("0") and m.exception is None and m.customer == "cus_acme"


def test_partial_reference_applies_what_was_paid() -> None:
    r = receipt("40.00", "inv1")
    m = match_receipt(r, Candidates(referenced=[item("inv1", "100.00")]))
    assert m.rule is MatchRule.PARTIAL_REFERENCE
    assert m.applications[0].amount == usd("40.00") and m.unapplied == usd("0")


def test_overpayment_applies_the_balance_and_leaves_the_rest_on_account() -> None:
    r = receipt("130.00", "inv1")
    m = match_receipt(r, Candidates(referenced=[item("inv1", "100.00")]))
    assert m.rule is MatchRule.OVERPAID_REFERENCE
    assert m.applications[0].amount == usd("100.00")
    assert m.unapplied == usd("30.00") and m.exception is ExceptionKind.ON_ACCOUNT


def test_several_referenced_invoices_summing_to_the_amount_are_a_combination() -> None:
    r = receipt("150.00", "inv1", "inv2")
    m = match_receipt(r, Candidates(referenced=[item("inv1", "100.00"), item("inv2", "50.00")]))
    assert m.rule is MatchRule.COMBINATION
    assert {a.invoice_id: a.amount for a in m.applications} == {"inv1": usd("100.00"), "inv2": usd("50.00")}


def test_naming_several_but_paying_less_pays_the_oldest_due_first() -> None:
    r = receipt("120.00", "inv2", "inv1")
    m = match_receipt(r, Candidates(referenced=[item("inv2", "100.00", due=5), item("inv1", "80.00", due=1)]))
    assert m.rule is MatchRule.PARTIAL_REFERENCE
    assert [(a.invoice_id, a.amount) for a in m.applications] == [("inv1", usd("80.00")), ("inv2", usd("40.00"))]


def test_a_settled_invoice_paid_again_is_a_duplicate_settlement() -> None:
    r = receipt("100.00", "inv1")
    m = match_receipt(r, Candidates(referenced=[item("inv1", "0.00", total="100.00")]))
    assert m.rule is MatchRule.UNMATCHED and m.exception is ExceptionKind.DUPLICATE_SETTLEMENT
    assert m.applications == [] and m.unapplied == usd("100.00")


def test_another_entitys_invoice_is_a_cross_entity_remittance() -> None:
    r = receipt("100.00", "inv1", entity="DE01")
    m = match_receipt(r, Candidates(referenced=[item("inv1", "100.00", entity="US01")]))
    assert m.exception is ExceptionKind.CROSS_ENTITY and m.applications == []
    assert m.suggestions[0].invoice_ids == ["inv1"]
    assert "DE01" in m.explanation and "US01" in m.explanation


def test_a_currency_mismatch_is_unmatched_with_the_reason() -> None:
    r = receipt("100.00", "inv1", currency="EUR")
    m = match_receipt(r, Candidates(referenced=[item("inv1", "100.00")]))
    assert m.rule is MatchRule.UNMATCHED and m.exception is ExceptionKind.UNMATCHED
    assert "currency mismatch" in m.explanation and m.unapplied == Money.of("100.00", "EUR")


# -- rules 2 and 3: the payer's customer -----------------------------------------------------


def test_unique_amount_of_the_payers_customer() -> None:
    r = receipt("75.00")
    own = [item("inv1", "75.00"), item("inv2", "90.00")]
    m = match_receipt(r, Candidates(customer="cus_acme", customer_basis="payer account", customer_items=own))
    assert m.rule is MatchRule.UNIQUE_AMOUNT and m.applications[0].invoice_id == "inv1"


def test_two_open_invoices_of_that_amount_is_not_a_match() -> None:
    r = receipt("75.00")
    own = [item("inv1", "75.00"), item("inv2", "75.00")]
    m = match_receipt(r, Candidates(customer="cus_acme", customer_items=own))
    assert m.rule is MatchRule.UNMATCHED
    assert {tuple(s.invoice_ids) for s in m.suggestions} >= {("inv1",), ("inv2",)}


def test_one_set_of_invoices_adding_up_is_a_combination() -> None:
    r = receipt("170.00")
    own = [item("inv1", "100.00"), item("inv2", "70.00"), item("inv3", "55.00")]
    m = match_receipt(r, Candidates(customer="cus_acme", customer_items=own))
    assert m.rule is MatchRule.COMBINATION
    assert sorted(a.invoice_id for a in m.applications) == ["inv1", "inv2"]


def test_two_sets_adding_up_are_suggestions_not_a_match() -> None:
    r = receipt("100.00")
    own = [item("a", "60.00"), item("b", "40.00"), item("c", "70.00"), item("d", "30.00")]
    m = match_receipt(r, Candidates(customer="cus_acme", customer_items=own))
    assert m.rule is MatchRule.UNMATCHED
    sets = {tuple(sorted(s.invoice_ids)) for s in m.suggestions if len(s.invoice_ids) > 1}
    assert sets == {("a", "b"), ("c", "d")}


def test_the_combination_search_is_bounded() -> None:
    # 60 invoices of 1.00 and a receipt of 2.00: thousands of pairs; only the oldest
    # MAX_COMBINATION_ITEMS are searched, and the answer is "ambiguous", quickly.
    own = [item(f"i{n:02}", "1.00", due=n) for n in range(60)]
    m = match_receipt(receipt("2.00"), Candidates(customer="cus_acme", customer_items=own))
    assert m.rule is MatchRule.UNMATCHED and len(m.suggestions) <= MAX_SUGGESTIONS
    assert all(int(i[1:]) < MAX_COMBINATION_ITEMS for s in m.suggestions for i in s.invoice_ids)


def test_an_unknown_payer_is_unmatched_with_same_amount_suggestions() -> None:
    r = receipt("75.00", payer="Globex Corporation")
    elsewhere = [item("inv9", "75.00", customer="globex"), item("inv8", "75.00", customer="initech")]
    m = match_receipt(r, Candidates(same_amount_elsewhere=elsewhere))
    assert m.rule is MatchRule.UNMATCHED and m.customer == ""
    assert m.suggestions[0].invoice_ids == ["inv9"]  # the payer's name is closest to globex
    assert all(0 <= s.score <= 100 for s in m.suggestions)


def test_at_most_five_suggestions_best_first() -> None:
    own = [item(f"i{n}", f"{100 + n}.00") for n in range(12)]
    m = match_receipt(receipt("99.00"), Candidates(customer="cus_acme", customer_items=own))
    assert len(m.suggestions) == MAX_SUGGESTIONS
    assert [s.score for s in m.suggestions] == sorted((s.score for s in m.suggestions), reverse=True)
    assert m.suggestions[0].invoice_ids == ["i0"]  # the nearest balance


def test_a_receipt_of_no_money_is_refused() -> None:
    try:
        match_receipt(receipt("0.00"), Candidates())
    except ValueError as error:
        assert "not money in" in str(error)
    else:  # pragma: no cover
        raise AssertionError("a zero receipt was matched")


# -- the payer directory --------------------------------------------------------------------


def test_names_compare_normalised_and_a_shared_name_maps_to_nobody() -> None:
    assert normalise_name("  ACME GmbH.") == normalise_name("Acme") == "acme"
    assert normalise_name("Société Générale S.A.") == "societe generale s a"
    directory = PayerDirectory.learn(
        [("DE89 3704 0044 0532 0130 00", "Acme GmbH", "cus_acme"), ("", "Smith", "cus_1"), ("", "SMITH", "cus_2")]
    )
    assert directory.customer_of(receipt("1.00", account="de89370400440532013000"))[0] == "cus_acme"
    assert directory.customer_of(receipt("1.00", payer="ACME gmbh"))[0] == "cus_acme"
    customer, why = directory.customer_of(receipt("1.00", payer="smith"))
    assert customer == "" and "several customers" in why
    assert PayerDirectory.from_payers(directory.to_payers()) == directory
    assert payer_keys(receipt("1.00", payer="Acme Inc", account="x 1")) == [account_key("X1"), name_key("acme")]


# -- a batch ----------------------------------------------------------------------------------


def test_two_receipts_for_one_invoice_do_not_both_take_its_balance() -> None:
    book = OpenItemBook(items=[item("inv1", "100.00")])
    first, second, third = match_statement(
        [receipt("60.00", "inv1", rid="a"), receipt("60.00", "inv1", rid="b"), receipt("10.00", "inv1", rid="c")], book
    )
    assert first.rule is MatchRule.PARTIAL_REFERENCE and first.applications[0].amount == usd("60.00")
    assert second.rule is MatchRule.OVERPAID_REFERENCE and second.applications[0].amount == usd("40.00")
    assert second.unapplied == usd("20.00")
    assert third.exception is ExceptionKind.DUPLICATE_SETTLEMENT


def test_the_book_maps_payers_to_their_customer() -> None:
    directory = PayerDirectory.learn([("NL91ABNA0417164300", "Initech", "cus_ini")])
    book = OpenItemBook(
        items=[item("inv1", "75.00", customer="cus_ini"), item("inv2", "75.00", customer="cus_other")],
        payers=directory.to_payers(),
    )
    (m,) = match_statement([receipt("75.00", account="NL91 ABNA 0417 1643 00")], book)
    assert m.rule is MatchRule.UNIQUE_AMOUNT and m.customer == "cus_ini"
    assert m.applications[0].invoice_id == "inv1"


def test_a_receipt_listed_twice_gets_its_first_match() -> None:
    book = OpenItemBook(items=[item("inv1", "100.00")])
    r = receipt("100.00", "inv1")
    first, again = match_statement([r, r], book)
    assert again == first and first.rule is MatchRule.EXACT_REFERENCE


def test_references_are_the_invoice_hint_then_the_remittance_once_each() -> None:
    r = receipt("1.00", "inv 1", "INV1", "n-2").model_copy(update={"invoice_hint": "in_9"})
    assert reference_keys(r) == ["IN_9", "INV1", "N-2"]
    view = BookView(OpenItemBook(items=[item("inv1", "5.00"), item("2", "5.00")]))
    assert [i.invoice_id for i in view.candidates(r).referenced] == ["inv1", "2"]


# -- the invariant ----------------------------------------------------------------------------

_customers = st.sampled_from(["c1", "c2", "c3"])
_items = st.lists(
    st.builds(
        lambda n, cents, customer, entity: item(
            f"inv{n}", f"{cents // 100}.{cents % 100:02}", customer=customer, entity=entity, total="999.00"
        ),
        st.integers(0, 15),
        st.integers(0, 40_000),
        _customers,
        st.sampled_from(["US01", "US01", "DE01"]),
    ),
    max_size=15,
)
_receipts = st.lists(
    st.builds(
        lambda n, cents, refs, payer: receipt(
            f"{cents // 100}.{cents % 100:02}", *[f"inv{r}" for r in refs], rid=f"r{n}", payer=payer
        ),
        st.integers(0, 30),
        st.integers(1, 80_000),
        st.lists(st.integers(0, 15), max_size=3),
        st.sampled_from(["", "c1", "c2", "nobody"]),
    ),
    max_size=12,
    unique_by=lambda r: r.receipt_id,
)


@settings(max_examples=300, deadline=None)
@given(_items, _receipts)
def test_every_match_adds_up_and_no_balance_is_over_applied(items: list[OpenItem], receipts: list[Receipt]) -> None:
    book = OpenItemBook(items=items, payers={name_key("c1"): "c1", name_key("c2"): "c2"})
    first = {}
    for i in items:
        first.setdefault(i.invoice_id, i)
    left = {k: v.balance.minor for k, v in first.items()}
    matches = match_statement(receipts, book)
    assert len(matches) == len(receipts)
    for r, m in zip(receipts, matches, strict=True):
        check(m, r)
        assert m.receipt_id == r.receipt_id
        assert len(m.suggestions) <= MAX_SUGGESTIONS
        for a in m.applications:
            assert a.amount.minor > 0
            left[a.invoice_id] -= a.amount.minor
            assert left[a.invoice_id] >= 0, f"{a.invoice_id} over-applied by {r.receipt_id}"
            assert first[a.invoice_id].legal_entity == r.legal_entity
        assert (m.rule is MatchRule.UNMATCHED) == (not m.applications)
