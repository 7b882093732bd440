"""Hostile requests at start_amendment, start_renewal and start_reconciliation: each is refused with a clear
error (a pydantic ValidationError when the data is not a request at all, InvalidRequest
when it is one that cannot be carried out), and none reaches Temporal."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from canonical.amendment import InvalidRequest
from canonical.models import AmendmentRequest
from canonical.renewal import RenewalRequest
from starter.client import start_amendment, start_reconciliation, start_renewal
from tests.badinput.kit import (
    ReadOnlyBilling,
    RecordingClient,
    amendment_dict,
    amendment_subscription,
    negative_quantities,
    not_a_date,
    not_a_decimal,
    not_a_list,
    not_a_string,
    not_an_int,
    renewal_dict,
    renewal_subscription,
    too_precise_usd,
    unknown_currencies,
)

SETTINGS = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
TODAY = date.today()


def finite(**bounds):
    return st.decimals(
        allow_nan=False, allow_infinity=False, **bounds
    )  # start_renewal judges "in the future" by the real date


async def refused(start, model, body: dict[str, Any], billing: ReadOnlyBilling) -> Exception:
    """Validate `body` as a `model` and start it; return the error, which must be clear."""
    client = RecordingClient()
    try:
        request = model.model_validate(body)
        await start(client, request, billing=billing)
    except (ValidationError, InvalidRequest) as error:
        assert client.calls == [], f"{client.calls} after {error}"
        assert str(error).strip()
        return error
    raise AssertionError(f"accepted: {body}")


def amend(body: dict[str, Any]):
    return refused(start_amendment, AmendmentRequest, body, ReadOnlyBilling(amendment_subscription()))


def renew(body: dict[str, Any]):
    return refused(start_renewal, RenewalRequest, body, ReadOnlyBilling(renewal_subscription(TODAY)))


async def test_the_valid_baselines_do_start():
    """The generators below change one thing about these; make sure that is what's refused."""
    for start, model, body, billing in (
        (start_amendment, AmendmentRequest, amendment_dict(), ReadOnlyBilling(amendment_subscription())),
        (start_renewal, RenewalRequest, renewal_dict(TODAY), ReadOnlyBilling(renewal_subscription(TODAY))),
    ):
        client = RecordingClient()
        with pytest.raises(AssertionError, match="reached start_workflow"):
            await start(client, model.model_validate(body), billing=billing)
        assert client.calls == ["start_workflow"]


# -- amendments -------------------------------------------------------------------------------

AMENDMENT_STRINGS = ["amendment_id", "contract_id", "subscription_id", "account_id", "currency", "requested_by"]
AMENDMENT_IDS = ["amendment_id", "contract_id", "subscription_id", "account_id"]

wrong_amendment_types = st.one_of(
    st.tuples(st.sampled_from(AMENDMENT_STRINGS), not_a_string).map(lambda fv: amendment_dict(**{fv[0]: fv[1]})),
    not_a_date.map(lambda v: amendment_dict(effective_date=v)),
    not_a_list.map(lambda v: amendment_dict(lines=v)),
    not_an_int.map(lambda v: amendment_dict(line={"quantity": v})),
    not_a_decimal.map(lambda v: amendment_dict(line={"unit_price": v})),
    not_a_decimal.map(lambda v: amendment_dict(line={"discount_percent": v})),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "sNaN"]).map(lambda v: amendment_dict(line={"unit_price": v})),
    st.sampled_from([*AMENDMENT_STRINGS, "effective_date", "lines"]).map(
        lambda f: {k: v for k, v in amendment_dict().items() if k != f}
    ),
    # An id that is empty or blank breaks the business id rule: refused before any look-up.
    st.tuples(st.sampled_from(AMENDMENT_IDS), st.sampled_from(["", " ", "\t\n"])).map(
        lambda fv: amendment_dict(**{fv[0]: fv[1]})
    ),
)


@SETTINGS
@given(body=wrong_amendment_types)
async def test_an_amendment_of_the_wrong_shape_is_a_validation_error(body):
    assert isinstance(await amend(body), ValidationError)


def unlike(model_dates: tuple[date, date]):
    """Dates outside [start, end)."""
    start, end = model_dates
    return st.one_of(st.dates(max_value=start - timedelta(days=1)), st.dates(min_value=end))


bad_amendments = st.one_of(
    negative_quantities.map(lambda q: amendment_dict(line={"quantity": q})),
    unknown_currencies.map(lambda c: amendment_dict(currency=c)),
    too_precise_usd.map(lambda p: amendment_dict(line={"unit_price": str(p)})),
    finite(max_value=Decimal("-0.01"), places=2).map(lambda p: amendment_dict(line={"unit_price": str(p)})),
    st.one_of(finite(max_value=Decimal("-0.01"), places=2), finite(min_value=Decimal("100.01"), places=2)).map(
        lambda d: amendment_dict(line={"discount_percent": str(d)})
    ),
    unlike((date(2026, 11, 1), date(2026, 12, 1))).map(lambda d: amendment_dict(effective_date=d.isoformat())),
    st.sampled_from(["", "   "]).map(lambda s: amendment_dict(requested_by=s)),
    st.just(amendment_dict(lines=[])),
    st.just(amendment_dict(lines=[amendment_dict()["lines"][0]] * 2)),
    st.just(amendment_dict(subscription_id="sub_other")),
    st.just(amendment_dict(account_id="cus_other")),
    st.sampled_from(["EUR", "JPY", "GBP"]).map(lambda c: amendment_dict(currency=c)),
)


@SETTINGS
@given(body=bad_amendments)
async def test_an_amendment_that_cannot_be_carried_out_is_refused(body):
    error = await amend(body)
    assert isinstance(error, InvalidRequest) and error.problems


# -- renewals -------------------------------------------------------------------------------

RENEWAL_STRINGS = ["contract_id", "subscription_id", "account_id", "term", "requested_by"]
RENEWAL_IDS = ["contract_id", "subscription_id", "account_id", "term"]

wrong_renewal_types = st.one_of(
    st.tuples(st.sampled_from(RENEWAL_STRINGS), not_a_string).map(lambda fv: renewal_dict(TODAY, **{fv[0]: fv[1]})),
    st.tuples(st.sampled_from(["new_term_start", "new_term_end"]), not_a_date).map(
        lambda fv: renewal_dict(TODAY, **{fv[0]: fv[1]})
    ),
    not_a_decimal.map(lambda v: renewal_dict(TODAY, uplift_percent=v)),
    st.sampled_from(["NaN", "Infinity"]).map(lambda v: renewal_dict(TODAY, uplift_percent=v)),
    not_a_list.filter(lambda v: v is not None).map(lambda v: renewal_dict(TODAY, lines=v)),
    not_an_int.map(lambda v: renewal_dict(TODAY, line={"quantity": v})),
    st.sampled_from([*RENEWAL_STRINGS, "new_term_start", "new_term_end"]).map(
        lambda f: {k: v for k, v in renewal_dict(TODAY).items() if k != f}
    ),
    st.tuples(st.sampled_from(RENEWAL_IDS), st.sampled_from(["", " ", "\t\n"])).map(
        lambda fv: renewal_dict(TODAY, **{fv[0]: fv[1]})
    ),
)


@SETTINGS
@given(body=wrong_renewal_types)
async def test_a_renewal_of_the_wrong_shape_is_a_validation_error(body):
    assert isinstance(await renew(body), ValidationError)


term_end = TODAY + timedelta(days=120)
bad_renewals = st.one_of(
    negative_quantities.map(lambda q: renewal_dict(TODAY, line={"quantity": q})),
    st.dates()
    .filter(lambda d: d != term_end)
    .map(lambda d: renewal_dict(TODAY, new_term_start=d.isoformat(), new_term_end=date.max.isoformat())),
    st.dates(max_value=term_end).map(lambda d: renewal_dict(TODAY, new_term_end=d.isoformat())),
    finite(max_value=Decimal("-0.01"), places=2).map(lambda u: renewal_dict(TODAY, uplift_percent=str(u))),
    st.text(alphabet="abcdefgh_", min_size=1, max_size=10)
    .filter(lambda p: p not in ("seats",))
    .map(lambda p: renewal_dict(TODAY, line={"product": "gold-" + p})),
    st.one_of(finite(max_value=Decimal("-0.01"), places=2), finite(min_value=Decimal("100.01"), places=2)).map(
        lambda d: renewal_dict(TODAY, line={"discount_percent": str(d)})
    ),
    st.sampled_from(["ZZ99", "", "EU01 "]).filter(bool).map(lambda e: renewal_dict(TODAY, legal_entity=e)),
    st.sampled_from(["", "  "]).map(lambda s: renewal_dict(TODAY, requested_by=s)),
    st.just(renewal_dict(TODAY, subscription_id="sub_other")),
    st.just(renewal_dict(TODAY, account_id="cus_other")),
    st.just(renewal_dict(TODAY, contract_id="C-other")),
)


@SETTINGS
@given(body=bad_renewals)
async def test_a_renewal_that_cannot_be_carried_out_is_refused(body):
    error = await renew(body)
    assert isinstance(error, InvalidRequest) and error.problems


# -- once gaps, found by these tests: each is refused before anything starts ----------------

ONCE_GAPS = [
    pytest.param(amend, amendment_dict(line={"quantity": 10**30}), id="amendment-huge-quantity"),
    pytest.param(amend, amendment_dict(line={"unit_price": "1e30"}), id="amendment-huge-price"),
    pytest.param(amend, amendment_dict(line={"quantity": True}), id="amendment-bool-quantity"),
    pytest.param(amend, amendment_dict(line={"quantity": "12"}), id="amendment-string-quantity"),
    pytest.param(amend, amendment_dict(line={"product": ""}), id="amendment-empty-product"),
    pytest.param(renew, renewal_dict(TODAY, line={"quantity": 10**30}), id="renewal-huge-quantity"),
    pytest.param(renew, renewal_dict(TODAY, uplift_percent="1e30"), id="renewal-huge-uplift"),
    pytest.param(
        renew,
        renewal_dict(TODAY, lines=[{"product": "seats", "quantity": 1}, {"product": "seats", "quantity": 2}]),
        id="renewal-duplicate-product",
    ),
    pytest.param(
        renew,
        renewal_dict(TODAY, current_term_changes=[{"product": "seats", "quantity": -5, "unit_price": "50.00"}]),
        id="renewal-negative-current-term-change",
    ),
    pytest.param(
        renew,
        renewal_dict(TODAY, current_term_changes=[{"product": "seats", "quantity": 5, "unit_price": "50.001"}]),
        id="renewal-too-precise-current-term-change",
    ),
    pytest.param(renew, renewal_dict(TODAY, term=""), id="renewal-empty-term"),
]


@pytest.mark.parametrize("start, body", ONCE_GAPS)
async def test_once_gaps_are_refused(start, body):
    await start(body)


# -- reconciliation ---------------------------------------------------------------------------


def not_a_period(text: str) -> bool:
    try:
        first = date.fromisoformat(f"{text}-01")
    except ValueError:
        return True
    return len(text) != 7 or first > TODAY


hostile_periods = st.one_of(
    st.text(max_size=40).filter(not_a_period),
    st.dates(min_value=TODAY.replace(day=1) + timedelta(days=32)).map(lambda d: f"{d:%Y-%m}"),
    st.sampled_from(
        [
            "2026-13",
            "2026-00",
            "26-10",
            "2026-1",
            "2026/10",
            "2026-10-01",
            "",
            " 2026-10",
            "2026-10\n",
            "'; DROP TABLE recon_runs; --",
        ]
    ),
)


@SETTINGS
@given(period=hostile_periods)
async def test_a_reconciliation_of_no_real_period_is_refused(period):
    client = RecordingClient()
    with pytest.raises(InvalidRequest) as refused_:
        await start_reconciliation(client, legal_entity="US01", period=period)
    assert client.calls == [] and refused_.value.problems


@SETTINGS
@given(entity=st.text(max_size=30).filter(lambda e: e != "US01"))
async def test_a_reconciliation_of_an_unknown_entity_is_refused(entity):
    client = RecordingClient()
    with pytest.raises(InvalidRequest, match="unknown legal entity"):
        await start_reconciliation(client, legal_entity=entity, period="2026-10")
    assert client.calls == []
