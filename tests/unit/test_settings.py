"""Settings from the environment: the variables users set today, the policies built as the
canonical models, and bad values refused with the variable's name."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from decimal import Decimal

import pytest

from canonical.approval import ApprovalPolicy
from canonical.dunning import DunningPolicies
from canonical.journal import WriteOffMethod
from canonical.models import DEFAULT_ENTITIES, Approver, ApproverRole
from canonical.money import Money
from canonical.policy_amounts import per_currency
from canonical.reconciliation import ReconciliationPolicy, Tolerance
from canonical.renewal import RenewalPolicy
from settings import InvalidSettings, Settings


@pytest.fixture(autouse=True)
def environment(monkeypatch):
    """No O2C_* variable from the machine running the tests."""
    for name in os.environ:
        if name.startswith("O2C_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_with_nothing_set_everything_points_at_the_embedded_stack():
    settings = Settings.from_env()
    assert settings.sandbox_url == "http://127.0.0.1:8700"
    assert settings.stripe_base_url == "http://127.0.0.1:8700/stripe/v1"
    assert settings.crm_base_url == "http://127.0.0.1:8700/salesforce/services/data/v60.0"
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith("/.o2c/o2c.sqlite")
    assert (settings.task_queue, settings.webhook_port, settings.http_timeout_seconds) == ("o2c", 8710, 10.0)
    # Unset, Temporal's own configuration decides (adapters/temporal.py).
    assert settings.temporal_address is None and settings.temporal_namespace is None
    assert settings.approval_policy == ApprovalPolicy()
    assert settings.dunning_policies() == DunningPolicies()
    assert settings.renewal_policy == RenewalPolicy()
    assert settings.legal_entities == DEFAULT_ENTITIES
    assert settings.reconciliation_policy == ReconciliationPolicy()


def test_the_variables_users_set_today(environment, tmp_path):
    for name, value in {
        "O2C_TEMPORAL_ADDRESS": "temporal:7233",
        "O2C_TEMPORAL_TLS": "yes",
        "O2C_TASK_QUEUE": "o2c-eu",
        "O2C_TEMPORAL_UI_URL": "https://ui.example/",
        "O2C_SANDBOX_URL": "http://sandbox:8700/",
        "O2C_SALESFORCE_BASE_URL": "https://acme.my.salesforce.com/services/data/v60.0/",
        "O2C_SALESFORCE_TOKEN": "sf-token",
        "O2C_STATE_DIR": str(tmp_path),
        "O2C_HTTP_TIMEOUT_SECONDS": "2.5",
        "O2C_WEBHOOK_PORT": "9000",
    }.items():
        environment.setenv(name, value)
    settings = Settings.from_env()
    assert (settings.temporal_address, settings.temporal_tls, settings.task_queue) == ("temporal:7233", True, "o2c-eu")
    assert settings.ui_url == "https://ui.example"
    assert settings.crm_base_url == "https://acme.my.salesforce.com/services/data/v60.0"
    assert settings.crm_token == "sf-token"
    # The adapters not named follow the sandbox.
    assert settings.netsuite_base_url == "http://sandbox:8700/netsuite/services/rest"
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'o2c.sqlite'}"
    assert (settings.http_timeout_seconds, settings.webhook_port) == (2.5, 9000)


def test_an_empty_variable_counts_as_unset(environment):
    environment.setenv("O2C_TASK_QUEUE", "")
    environment.setenv("O2C_FINANCE_THRESHOLD", "")
    settings = Settings.from_env()
    assert settings.task_queue == "o2c" and settings.approval_policy == ApprovalPolicy()


def test_on_sandbox_points_every_adapter_at_it():
    settings = Settings.from_env().on_sandbox("http://127.0.0.1:9999/")
    assert settings.sandbox_url == "http://127.0.0.1:9999"
    assert settings.avatax_base_url == "http://127.0.0.1:9999/avatax"
    assert settings.entitlements_base_url == "http://127.0.0.1:9999/entitlements/v1"


def test_approval_policy(environment):
    environment.setenv("O2C_FINANCE_THRESHOLD", "USD:5000, jpy:750000")
    environment.setenv("O2C_MAX_DISCOUNT_PERCENT", "15")
    environment.setenv("O2C_APPROVERS", "ana:finance, carl:controller")
    policy = Settings.from_env().approval_policy
    assert policy.finance_thresholds == per_currency(USD=5000, JPY=750000)  # the variable states the whole table
    assert policy.max_discount_percent == Decimal(15)
    assert policy.uncovered("EUR") == (
        "the finance approval threshold is not stated in EUR (the policy covers JPY, USD)"
    )
    assert policy.controller_thresholds == ApprovalPolicy().controller_thresholds
    assert policy.approvers == [
        Approver(name="ana", role=ApproverRole.FINANCE),
        Approver(name="carl", role=ApproverRole.CONTROLLER),
    ]


def test_a_bare_threshold_names_no_currency_and_is_refused(environment):
    environment.setenv("O2C_FINANCE_THRESHOLD", "5000")
    with pytest.raises(
        InvalidSettings, match=r"O2C_FINANCE_THRESHOLD: .*names no currency: policy amounts are per currency"
    ):
        Settings.from_env()


def test_approval_policy_from_a_file_per_currency(environment, tmp_path):
    path = tmp_path / "approval.json"
    tables = {"finance_thresholds": {"EUR": 9000, "CHF": 9500}, "controller_thresholds": {"EUR": 45000, "CHF": 47000}}
    path.write_text(json.dumps({**tables, "max_discount_percent": "10"}))
    environment.setenv("O2C_APPROVAL_POLICY_FILE", str(path))
    policy = Settings.from_env().approval_policy
    assert policy.finance_limit("CHF") == Money.of(9500, "CHF") and policy.max_discount_percent == Decimal(10)
    assert policy.uncovered("USD") is not None
    environment.setenv("O2C_CONTROLLER_THRESHOLD", "EUR:40000,CHF:42000")
    assert Settings.from_env().approval_policy.controller_limit("EUR") == Money.of(40000, "EUR")


def test_a_dunning_policy_above_the_card_networks_limit_fails_at_start(environment, tmp_path):
    path = tmp_path / "dunning.json"
    path.write_text(json.dumps({"segments": {"smb": {"max_attempts_per_30_days": 20}}}))
    environment.setenv("O2C_DUNNING_POLICIES_FILE", str(path))
    with pytest.raises(
        InvalidSettings, match=r"segments\.smb\.max_attempts_per_30_days: .*at most 15 attempts per card"
    ):
        Settings.from_env()


def test_dunning_policies_per_currency_and_write_off_from_a_file(environment, tmp_path):
    path = tmp_path / "dunning.json"
    body = {
        "default": {
            "strategic_arr_thresholds": {"USD": 50000, "EUR": 45000},
            "write_off": {"method": "allowance", "tax_relief_jurisdictions": ["US-CA", "GB"]},
        }
    }
    path.write_text(json.dumps(body))
    environment.setenv("O2C_DUNNING_POLICIES_FILE", str(path))
    policy = Settings.from_env().dunning_policies().default
    assert policy.is_strategic(Money.of(50000, "USD")) and not policy.strategic_arr_thresholds.covers("JPY")
    assert policy.write_off.method == WriteOffMethod.ALLOWANCE and policy.write_off.relieves_tax("GB")


def test_dunning_policies_from_a_file_with_one_day_length_for_all(environment, tmp_path):
    path = tmp_path / "dunning.json"
    path.write_text(json.dumps({"default": {"cancel_day": 45}, "segments": {"enterprise": {"cancel_day": 60}}}))
    environment.setenv("O2C_DUNNING_POLICIES_FILE", str(path))
    settings = Settings.from_env()
    assert settings.dunning_policies().default.cancel_day == 45
    assert settings.dunning_policies().default.day == timedelta(days=1)
    # A stack's default day applies only while O2C_DUNNING_DAY_SECONDS is unset.
    assert settings.dunning_policies(default_day=timedelta(seconds=1)).default.day == timedelta(seconds=1)
    environment.setenv("O2C_DUNNING_DAY_SECONDS", "2")
    policies = Settings.from_env().dunning_policies(default_day=timedelta(seconds=1))
    assert policies.default.day == policies.for_segment("enterprise").day == timedelta(seconds=2)
    assert policies.for_segment("enterprise").cancel_day == 60


def test_renewal_policy_and_legal_entities(environment, tmp_path):
    entities = [{"code": "DE01", "company_code": "DE01", "functional_currency": "EUR", "erp_subsidiary": "4"}]
    (tmp_path / "entities.json").write_text(json.dumps(entities))
    environment.setenv("O2C_LEGAL_ENTITIES_FILE", str(tmp_path / "entities.json"))
    environment.setenv("O2C_RENEWAL_UPLIFT_CAP", "5")
    environment.setenv("O2C_RENEWAL_DAY_SECONDS", "0.05")
    settings = Settings.from_env()
    assert settings.renewal_policy.uplift_cap_percent == Decimal(5)
    assert settings.renewal_policy.day == timedelta(seconds=0.05)
    assert [(e.code, e.functional_currency) for e in settings.legal_entities] == [("DE01", "EUR")]


def test_reconciliation_policy(environment, tmp_path):
    body = {"batch_size": 100, "heal_limits": {"USD": "50", "JPY": "7500"}}
    (tmp_path / "recon.json").write_text(json.dumps(body))
    environment.setenv("O2C_RECONCILIATION_FILE", str(tmp_path / "recon.json"))
    environment.setenv("O2C_RECON_TOLERANCE_MINOR", "2")
    policy = Settings.from_env().reconciliation_policy
    assert policy.batch_size == 100 and policy.heal_limits == per_currency(USD=50, JPY=7500)
    assert policy.tolerance == Tolerance(amount_minor=2, tax_minor=2, revenue_minor=2)
    environment.setenv("O2C_RECON_HEAL_LIMIT", "USD:250")
    policy = Settings.from_env().reconciliation_policy
    assert policy.heal_limits == per_currency(USD=250) and policy.uncovered("JPY") is not None


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("O2C_WEBHOOK_PORT", "eighty", "valid integer"),
        ("O2C_HTTP_TIMEOUT_SECONDS", "0", "greater than 0"),
        ("O2C_TEMPORAL_TLS", "maybe", "valid boolean"),
        ("O2C_FINANCE_THRESHOLD", "USD:ten thousand", "valid decimal"),
        ("O2C_CONTROLLER_THRESHOLD", "50000", "names no currency"),
        ("O2C_RECON_HEAL_LIMIT", "XYZ:100", "XYZ"),
        ("O2C_APPROVERS", "ana:boss", "'finance' or 'controller'"),
        ("O2C_RECON_TOLERANCE_MINOR", "-1", "greater than or equal to 0"),
        ("O2C_LEGAL_ENTITIES_FILE", "/nowhere/entities.json", "cannot read /nowhere/entities.json"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(environment, variable, value, says):
    environment.setenv(variable, value)
    with pytest.raises(InvalidSettings) as refused:
        Settings.from_env()
    assert f"{variable}" in str(refused.value) and says in str(refused.value)


def test_a_bad_policy_file_names_the_variable_and_the_field(environment, tmp_path):
    path = tmp_path / "dunning.json"
    path.write_text(json.dumps({"default": {"cancel_day": "soon"}}))
    environment.setenv("O2C_DUNNING_POLICIES_FILE", str(path))
    with pytest.raises(InvalidSettings, match=r"O2C_DUNNING_POLICIES_FILE\.default\.cancel_day: Input should be"):
        Settings.from_env()
    path.write_text("{not json")
    with pytest.raises(InvalidSettings, match=r"O2C_DUNNING_POLICIES_FILE: .* is not JSON"):
        Settings.from_env()


def test_environment_gives_a_child_process_the_same_settings(environment):
    environment.setenv("O2C_TEMPORAL_TLS", "true")
    settings = Settings.from_env().on_sandbox("http://127.0.0.1:9999").model_copy(update={"task_queue": "o2c-x"})
    for name, value in settings.environment().items():
        environment.setenv(name, value)
    assert Settings.from_env() == settings
