"""Approval windows are a person's time: their own settings, real hours unless set, whatever
the dunning and renewal days last; `o2c dev` says how long each lasts."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest

from canonical.durations import in_words
from settings import InvalidSettings, Settings
from starter.stack import clocks


@pytest.fixture(autouse=True)
def environment(monkeypatch):
    """No O2C_* variable from the machine running the tests."""
    for name in os.environ:
        if name.startswith("O2C_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize(
    ("span", "words"),
    [
        (timedelta(days=7), "7 days"),
        (timedelta(hours=72), "72 hours"),
        (timedelta(days=1), "24 hours"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(hours=100), "100 hours"),
        (timedelta(days=4), "4 days"),
        (timedelta(minutes=90), "90 minutes"),
        (timedelta(seconds=30), "30 seconds"),
        (timedelta(seconds=1), "1 second"),
        (timedelta(seconds=1.5), "1.5 seconds"),
    ],
)
def test_a_span_in_the_largest_unit_that_states_it_exactly(span, words):
    assert in_words(span) == words


def test_real_hours_by_default_even_on_a_one_second_dunning_day(environment):
    environment.setenv("O2C_DUNNING_DAY_SECONDS", "1")
    environment.setenv("O2C_RENEWAL_DAY_SECONDS", "0.5")
    policy = Settings.from_env().approval_policy
    assert (policy.escalate_after, policy.expire_after) == (timedelta(hours=72), timedelta(days=7))


def test_the_windows_are_set_by_their_own_variables(environment):
    environment.setenv("O2C_APPROVAL_ESCALATE_AFTER_SECONDS", "120")
    environment.setenv("O2C_APPROVAL_EXPIRE_AFTER_SECONDS", "600")
    environment.setenv("O2C_APPROVERS", "ana:finance,carl:controller")
    policy = Settings.from_env().approval_policy
    assert (policy.escalate_after, policy.expire_after) == (timedelta(minutes=2), timedelta(minutes=10))
    assert [a.name for a in policy.approvers] == ["ana", "carl"]  # the rest of the policy is kept
    # The dunning day is not touched by them.
    assert Settings.from_env().dunning_policies().default.day == timedelta(days=1)


def test_a_variable_wins_over_the_policy_file(environment, tmp_path):
    path = tmp_path / "approval.json"
    path.write_text(json.dumps({"escalate_after": "PT4H", "expire_after": "P2D"}))
    environment.setenv("O2C_APPROVAL_POLICY_FILE", str(path))
    policy = Settings.from_env().approval_policy
    assert (policy.escalate_after, policy.expire_after) == (timedelta(hours=4), timedelta(days=2))
    environment.setenv("O2C_APPROVAL_EXPIRE_AFTER_SECONDS", "86400")
    assert Settings.from_env().approval_policy.expire_after == timedelta(days=1)


@pytest.mark.parametrize(
    ("variables", "says"),
    [
        (
            {"O2C_APPROVAL_EXPIRE_AFTER_SECONDS": "0"},
            "O2C_APPROVAL_EXPIRE_AFTER_SECONDS: Input should be greater than 0",
        ),
        ({"O2C_APPROVAL_ESCALATE_AFTER_SECONDS": "-5"}, "O2C_APPROVAL_ESCALATE_AFTER_SECONDS: Input should be greater"),
        (
            {"O2C_APPROVAL_ESCALATE_AFTER_SECONDS": "soon"},
            "O2C_APPROVAL_ESCALATE_AFTER_SECONDS: Input should be a valid",
        ),
        # Alone, a short expiry falls before the default escalation at 72 hours.
        ({"O2C_APPROVAL_EXPIRE_AFTER_SECONDS": "30"}, "must escalate before it expires"),
        (
            {"O2C_APPROVAL_ESCALATE_AFTER_SECONDS": "60", "O2C_APPROVAL_EXPIRE_AFTER_SECONDS": "60"},
            "must escalate before it expires",
        ),
    ],
)
def test_windows_that_cannot_work_are_refused_at_start(environment, variables, says):
    for name, value in variables.items():
        environment.setenv(name, value)
    with pytest.raises(InvalidSettings) as refused:
        Settings.from_env()
    assert says in str(refused.value)
    if "escalate before" in says:
        assert "O2C_APPROVAL_ESCALATE_AFTER_SECONDS" in str(refused.value)


def test_a_policy_file_with_an_empty_window_is_refused(environment, tmp_path):
    path = tmp_path / "approval.json"
    path.write_text(json.dumps({"escalate_after": 0, "expire_after": 60}))
    environment.setenv("O2C_APPROVAL_POLICY_FILE", str(path))
    with pytest.raises(InvalidSettings, match="longer than zero"):
        Settings.from_env()


def test_o2c_dev_names_how_long_a_day_and_an_approval_window_last(environment):
    said = clocks(Settings.from_env())
    assert said == (
        "a dunning day lasts 1 second (O2C_DUNNING_DAY_SECONDS), a renewal day 24 hours "
        "(O2C_RENEWAL_DAY_SECONDS); an approval escalates after 72 hours and expires after 7 days "
        "(O2C_APPROVAL_ESCALATE_AFTER_SECONDS, O2C_APPROVAL_EXPIRE_AFTER_SECONDS)"
    )
    environment.setenv("O2C_DUNNING_DAY_SECONDS", "2")
    environment.setenv("O2C_APPROVAL_ESCALATE_AFTER_SECONDS", "20")
    environment.setenv("O2C_APPROVAL_EXPIRE_AFTER_SECONDS", "60")
    said = clocks(Settings.from_env())
    assert "a dunning day lasts 2 seconds" in said
    assert "escalates after 20 seconds and expires after 1 minute" in said
