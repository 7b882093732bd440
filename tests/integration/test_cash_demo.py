"""The demo's cash, credit and dispute stories on the dev server, the worker and the sandbox:
each reaches the outcome it is meant to, which is what `o2c demo` reports as ok."""

from __future__ import annotations

import pytest

from starter.cash_demo import CashStories
from starter.demo import Demo

pytestmark = pytest.mark.integration


@pytest.fixture
def stories(dev_server, worker, webhooks, settings, control, billing, tmp_path) -> CashStories:
    # The demo's people sign with a key of this test's own, which no other test's processes trust.
    own = settings.model_copy(update={"identity_key_file": tmp_path / "identity.key"})
    return CashStories(Demo(dev_server.client, own, control, billing))


async def test_the_statement_story_applies_every_receipt(stories):
    result = await stories.statement_story()
    assert result.outcome == result.expected, result
    assert result.process == "cash" and result.workflow_id.startswith("cash-")


async def test_the_statement_story_runs_again_on_the_same_state(
    dev_server, worker, webhooks, settings, control, billing
):
    """As `o2c demo` run twice on its state: the payer the first run's operator taught o2c is not
    the second run's unknown payer."""
    for _ in range(2):
        result = await CashStories(Demo(dev_server.client, settings, control, billing)).statement_story()
        assert result.outcome == result.expected, result


async def test_the_service_credit_story_is_approved_and_booked(stories):
    result = await stories.service_credit_story()
    assert result.outcome == result.expected, result
    assert "approved by fiona.finance" in result.message


async def test_the_dispute_story_is_lost_and_its_chargeback_booked(stories):
    result = await stories.dispute_story()
    assert result.outcome == result.expected, result
    assert result.message.count("-chargeback") == 1 and "-withdrawn" in result.message
