"""Configuration from the environment, in one model, with defaults that make the embedded stack work.

Every field is read from the variable its alias names (README.md has the table). A value that
does not parse fails at start with an error naming the variable. The business policies are
built as the canonical models the processes take (`approval_policy`, `dunning_policies()`,
`renewal_policy`, `legal_entities`, `reconciliation_policy`, `credit_policy`,
`dispute_policy`): the canonical default, with what the variables and policy files change.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from canonical.approval import ApprovalPolicy, as_per_currency
from canonical.credit import CreditPolicy
from canonical.dispute import DisputePolicy
from canonical.dunning import DunningPolicies
from canonical.models import DEFAULT_ENTITIES, Approver, LegalEntity, entity_problems
from canonical.policy_amounts import PerCurrency
from canonical.reconciliation import ReconciliationPolicy, Tolerance
from canonical.renewal import RenewalPolicy
from canonical.usage.models import UsagePolicy

SANDBOX_DEFAULT_URL = "http://127.0.0.1:8700"

# Each adapter's base URL field and its path on the sandbox, where it points when its
# variable is not set.
SANDBOX_PATHS = {
    "stripe_base_url": "/stripe/v1",
    "avatax_base_url": "/avatax",
    "netsuite_base_url": "/netsuite/services/rest",
    "sap_base_url": "/sap",
    "entitlements_base_url": "/entitlements/v1",
    "notifications_base_url": "/notifications/v1",
    "crm_base_url": "/salesforce/services/data/v60.0",
    "stripe_meter_events_url": "/stripe/v2",
}


class InvalidSettings(ValueError):
    """A variable whose value o2c cannot use."""


BaseUrl = Annotated[str, AfterValidator(lambda url: url.rstrip("/"))]


def _on_the_sandbox(field: str) -> Callable[[dict[str, Any]], str]:
    return lambda settings: f"{settings['sandbox_url']}{SANDBOX_PATHS[field]}"


def _v2_of(stripe_base_url: str) -> str:
    """Stripe's v2 API beside its v1 (…/v1 -> …/v2)."""
    base = stripe_base_url.rstrip("/")
    return (base[: -len("/v1")] if base.endswith("/v1") else base) + "/v2"


def _sqlite_in_state_dir(settings: dict[str, Any]) -> str:
    return f"sqlite:///{(settings['state_dir'] / 'o2c.sqlite').resolve()}"


def _identity_key_in_state_dir(settings: dict[str, Any]) -> Path:
    return Path(settings["state_dir"]) / "identity.key"


def _token_in_config_dir() -> Path:
    """Where `o2c login` keeps the personal API token: the user's config directory."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "o2c" / "token"


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _approvers(value: Any) -> Any:
    """`name:role,name:role` as the list of approvers it names."""
    if not isinstance(value, str):
        return value
    approvers = []
    for entry in value.split(","):
        name, _, role = entry.strip().partition(":")
        approvers.append({"name": name, "role": role})
    return approvers


def _per_currency(value: Any) -> Any:
    """`USD:10000,JPY:1500000` as a policy amount per currency. A bare number is refused: it
    would be read in whatever currency a process happens to be in."""
    if not isinstance(value, str):
        return value
    amounts = {}
    for entry in value.split(","):
        currency, colon, amount = entry.strip().partition(":")
        if not colon:
            raise ValueError(
                f"{entry.strip()!r} names no currency: policy amounts are per currency, e.g. USD:10000,JPY:1500000"
            )
        amounts[currency.strip().upper()] = amount.strip()
    return {"amounts": amounts}


# An amount per currency, from a variable in the notation of _per_currency.
PerCurrencyVariable = Annotated[PerCurrency | None, NoDecode, BeforeValidator(_per_currency)]


def _json_file(value: Any) -> Any:
    """A policy file's path as the JSON document it holds (validated as the field's model)."""
    if not isinstance(value, str | Path):
        return value
    try:
        return json.loads(Path(value).read_text())
    except OSError as error:
        raise ValueError(f"cannot read {value}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{value} is not JSON: {error}") from None


# A policy file is read and validated at start, so a wrong one fails before any process runs.
PolicyFile = BeforeValidator(_json_file)


def _policy_document(model: type[BaseModel]) -> BeforeValidator:
    """A policy file read as `model`: a key the model does not have is refused (a misspelt
    threshold would otherwise leave the default in force without a word), and an amount per
    currency may be the plain table of docs/policies.md ({"USD": 5000, "JPY": 750000})."""
    tables = {name for name, field in model.model_fields.items() if "PerCurrency" in str(field.annotation)}

    def read(value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        unknown = sorted(set(value) - set(model.model_fields))
        if unknown:
            raise ValueError(
                f"unknown field(s) {', '.join(unknown)}; a {model.__name__} has {', '.join(model.model_fields)}"
            )
        return {key: as_per_currency(v) if key in tables else v for key, v in value.items()}

    return BeforeValidator(read)


def _routable(entities: list[LegalEntity] | None) -> list[LegalEntity] | None:
    """Every entity's bookings are routed to its ledger: two entities on one ledger is refused."""
    problems = entity_problems(entities or [])
    if problems:
        raise ValueError("; ".join(problems))
    return entities


class Settings(BaseSettings):
    # NoDecode below: those variables hold a path, or a list in o2c's own notation, not JSON.
    model_config = SettingsConfigDict(frozen=True, validate_by_name=True, env_ignore_empty=True)

    # Temporal. Unset, the connection falls through to the TEMPORAL_* variables and the
    # `temporal` CLI profile (adapters/temporal.py says in which order).
    temporal_address: str | None = Field(None, validation_alias="O2C_TEMPORAL_ADDRESS")
    temporal_namespace: str | None = Field(None, validation_alias="O2C_TEMPORAL_NAMESPACE")
    temporal_api_key: str | None = Field(None, validation_alias="O2C_TEMPORAL_API_KEY")
    temporal_tls: bool | None = Field(None, validation_alias="O2C_TEMPORAL_TLS")
    task_queue: str = Field("o2c", validation_alias="O2C_TASK_QUEUE")
    ui_url: BaseUrl = Field("http://127.0.0.1:8233", validation_alias="O2C_TEMPORAL_UI_URL")

    # o2c's own state: the embedded stack's files and o2c's database.
    state_dir: Path = Field(Path(".o2c"), validation_alias="O2C_STATE_DIR")
    database_url: str = Field(default_factory=_sqlite_in_state_dir, validation_alias="O2C_DATABASE_URL")

    # Who is who (docs/identity.md): the Ed25519 key that signs decisions (held by the front
    # doors that sign people in, generated in the state directory when first needed), further
    # public keys processes trust (a key being rotated out, a console's), and the CLI's token.
    identity_key_file: Path = Field(
        default_factory=_identity_key_in_state_dir, validation_alias="O2C_IDENTITY_KEY_FILE"
    )
    identity_public_keys: Annotated[list[str], NoDecode, BeforeValidator(_comma_list)] = Field(
        default_factory=list, validation_alias="O2C_IDENTITY_PUBLIC_KEYS"
    )
    token_file: Path = Field(default_factory=_token_in_config_dir, validation_alias="O2C_TOKEN_FILE")

    # The systems o2c talks to; each base URL defaults to its path on the sandbox.
    sandbox_url: BaseUrl = Field(SANDBOX_DEFAULT_URL, validation_alias="O2C_SANDBOX_URL")
    stripe_base_url: BaseUrl = Field(
        default_factory=_on_the_sandbox("stripe_base_url"), validation_alias="O2C_STRIPE_BASE_URL"
    )
    stripe_api_key: str = Field("sk_test_o2c_sandbox", validation_alias="O2C_STRIPE_API_KEY")
    # Stripe's v2 meter event stream (meter-events.stripe.com/v2); unset, the Stripe base URL's v2.
    stripe_meter_events_url: BaseUrl = Field(
        default_factory=lambda settings: _v2_of(settings["stripe_base_url"]),
        validation_alias="O2C_STRIPE_METER_EVENTS_URL",
    )
    avatax_base_url: BaseUrl = Field(
        default_factory=_on_the_sandbox("avatax_base_url"), validation_alias="O2C_AVATAX_BASE_URL"
    )
    avatax_account_id: str = Field("o2c", validation_alias="O2C_AVATAX_ACCOUNT_ID")
    avatax_license_key: str = Field("sandbox", validation_alias="O2C_AVATAX_LICENSE_KEY")
    avatax_company_code: str = Field("US01", validation_alias="O2C_AVATAX_COMPANY_CODE")
    netsuite_base_url: BaseUrl = Field(
        default_factory=_on_the_sandbox("netsuite_base_url"), validation_alias="O2C_NETSUITE_BASE_URL"
    )
    netsuite_token: str = Field("sandbox-token", validation_alias="O2C_NETSUITE_TOKEN")
    # SAP S/4HANA Cloud: the tenant's API host (…-api.s4hana.cloud.sap), the communication
    # user of the SAP_COM_0002 arrangement, and the logical system o2c's documents come from.
    sap_base_url: BaseUrl = Field(default_factory=_on_the_sandbox("sap_base_url"), validation_alias="O2C_SAP_BASE_URL")
    sap_user: str = Field("O2C_COMM", validation_alias="O2C_SAP_USER")
    sap_password: str = Field("sandbox-password", validation_alias="O2C_SAP_PASSWORD")
    sap_logical_system: str = Field("O2C", validation_alias="O2C_SAP_LOGICAL_SYSTEM")
    entitlements_base_url: BaseUrl = Field(
        default_factory=_on_the_sandbox("entitlements_base_url"), validation_alias="O2C_ENTITLEMENTS_BASE_URL"
    )
    notifications_base_url: BaseUrl = Field(
        default_factory=_on_the_sandbox("notifications_base_url"), validation_alias="O2C_NOTIFICATIONS_BASE_URL"
    )
    crm_base_url: BaseUrl = Field(
        default_factory=_on_the_sandbox("crm_base_url"), validation_alias="O2C_SALESFORCE_BASE_URL"
    )
    crm_token: str = Field("sandbox-token", validation_alias="O2C_SALESFORCE_TOKEN")
    http_timeout_seconds: float = Field(10.0, gt=0, validation_alias="O2C_HTTP_TIMEOUT_SECONDS")
    # How long the CLI waits for a worker to answer a process's state query or take an
    # approval or resolution, before it says that no worker answered (Temporal did).
    worker_answer_seconds: float = Field(20.0, gt=0, validation_alias="O2C_WORKER_ANSWER_SECONDS")

    # The Stripe webhook ingress (`o2c webhooks`): the endpoint's signing secret and where to listen.
    stripe_webhook_secret: str = Field("", validation_alias="O2C_STRIPE_WEBHOOK_SECRET")
    webhook_host: str = Field("127.0.0.1", validation_alias="O2C_WEBHOOK_HOST")
    webhook_port: int = Field(8710, ge=1, le=65535, validation_alias="O2C_WEBHOOK_PORT")

    # Approval: the policy (a JSON ApprovalPolicy), thresholds on the change in annual value
    # per currency (`USD:10000,JPY:1500000`, major units; a variable states the whole table)
    # and who may approve.
    approval_policy_in_file: Annotated[ApprovalPolicy | None, NoDecode, PolicyFile] = Field(
        None, validation_alias="O2C_APPROVAL_POLICY_FILE"
    )
    finance_threshold: PerCurrencyVariable = Field(None, validation_alias="O2C_FINANCE_THRESHOLD")
    controller_threshold: PerCurrencyVariable = Field(None, validation_alias="O2C_CONTROLLER_THRESHOLD")
    max_discount_percent: Decimal | None = Field(None, validation_alias="O2C_MAX_DISCOUNT_PERCENT")
    approvers: Annotated[list[Approver] | None, NoDecode, BeforeValidator(_approvers)] = Field(
        None, validation_alias="O2C_APPROVERS"
    )
    # How long an approval waits for a person before it escalates, then expires, in every
    # process. A person's time: real hours (the policy's 72 hours and 7 days) whatever the
    # dunning and renewal days last; only a scripted demo or test has reason to shorten it.
    approval_escalate_after_seconds: float | None = Field(
        None, gt=0, validation_alias="O2C_APPROVAL_ESCALATE_AFTER_SECONDS"
    )
    approval_expire_after_seconds: float | None = Field(
        None, gt=0, validation_alias="O2C_APPROVAL_EXPIRE_AFTER_SECONDS"
    )

    # Dunning: the policies (default and per segment) and the length of a dunning day.
    dunning_policies_in_file: Annotated[DunningPolicies | None, NoDecode, PolicyFile] = Field(
        None, validation_alias="O2C_DUNNING_POLICIES_FILE"
    )
    dunning_day_seconds: float | None = Field(None, gt=0, validation_alias="O2C_DUNNING_DAY_SECONDS")

    # Renewal: the uplift cap (percent) and how long a calendar day lasts while a renewal waits.
    renewal_uplift_cap: Decimal | None = Field(None, validation_alias="O2C_RENEWAL_UPLIFT_CAP")
    renewal_day_seconds: float | None = Field(None, gt=0, validation_alias="O2C_RENEWAL_DAY_SECONDS")

    # The legal entities o2c books for.
    legal_entities_in_file: Annotated[list[LegalEntity] | None, NoDecode, PolicyFile, AfterValidator(_routable)] = (
        Field(None, validation_alias="O2C_LEGAL_ENTITIES_FILE")
    )

    # Reconciliation: the policy, every tolerance at once (minor units), the healing limit per
    # currency (`USD:1000,JPY:150000`, major units).
    reconciliation_policy_in_file: Annotated[ReconciliationPolicy | None, NoDecode, PolicyFile] = Field(
        None, validation_alias="O2C_RECONCILIATION_FILE"
    )
    recon_tolerance_minor: int | None = Field(None, ge=0, validation_alias="O2C_RECON_TOLERANCE_MINOR")
    recon_heal_limit: PerCurrencyVariable = Field(None, validation_alias="O2C_RECON_HEAL_LIMIT")

    # Usage: the review policy and the meters' rules (units, bounds, spike limits), and the
    # spike limit for every meter at once (0.40 holds an invoice above 1.4x the median).
    usage_policy_in_file: Annotated[UsagePolicy | None, NoDecode, PolicyFile] = Field(
        None, validation_alias="O2C_USAGE_POLICY_FILE"
    )
    usage_spike_threshold: Decimal | None = Field(None, gt=0, validation_alias="O2C_USAGE_SPIKE_THRESHOLD")

    # Credits and refunds (who approves them, per currency) and disputes (how a lost one is
    # booked, whether it is written off, when the evidence is escalated).
    # (Validators run last to first: the file is read, then read as the policy.)
    credit_policy_in_file: Annotated[CreditPolicy | None, NoDecode, _policy_document(CreditPolicy), PolicyFile] = Field(
        None, validation_alias="O2C_CREDIT_POLICY_FILE"
    )
    dispute_policy_in_file: Annotated[DisputePolicy | None, NoDecode, _policy_document(DisputePolicy), PolicyFile] = (
        Field(None, validation_alias="O2C_DISPUTE_POLICY_FILE")
    )

    @model_validator(mode="after")
    def _approval_windows(self) -> Settings:
        """An approval escalates while it still waits: the escalation before the expiry, both
        after some time (a policy file states them too)."""
        policy = self.approval_policy
        if policy.escalate_after <= timedelta(0) or policy.expire_after <= timedelta(0):
            raise ValueError(
                "an approval's escalate_after and expire_after must be longer than zero "
                f"(got {policy.escalate_after} and {policy.expire_after})"
            )
        if policy.escalate_after >= policy.expire_after:
            raise ValueError(
                f"an approval must escalate before it expires: escalate after {policy.escalate_after} is not "
                f"before expire after {policy.expire_after} (O2C_APPROVAL_ESCALATE_AFTER_SECONDS, "
                "O2C_APPROVAL_EXPIRE_AFTER_SECONDS, O2C_APPROVAL_POLICY_FILE)"
            )
        return self

    @classmethod
    def from_env(cls) -> Settings:
        try:
            return cls()
        except ValidationError as error:
            raise InvalidSettings(_problems(error)) from None

    def on_sandbox(self, url: str) -> Settings:
        """The same settings with every adapter pointed at the sandbox at `url`."""
        url = url.rstrip("/")
        return self.model_copy(
            update={"sandbox_url": url, **{name: f"{url}{path}" for name, path in SANDBOX_PATHS.items()}}
        )

    def environment(self) -> dict[str, str]:
        """The variables that give another process these settings: every plain value; the
        approvers and the policy files it reads from the environment it inherits."""
        variables = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if isinstance(value, str | int | float | Decimal | Path) and isinstance(field.validation_alias, str):
                variables[field.validation_alias] = str(value)
        return variables

    @property
    def identity_keys(self) -> list[str]:
        """The public keys processes started now trust: the configured ones and the public half
        of the identity key, which is written beside it (`identity.key.pub`) when generated."""
        public = self.identity_key_file.with_name(self.identity_key_file.name + ".pub")
        own = [public.read_text().strip()] if public.exists() else []
        return list(dict.fromkeys([*self.identity_public_keys, *own]))

    @property
    def approval_policy(self) -> ApprovalPolicy:
        return (self.approval_policy_in_file or ApprovalPolicy()).model_copy(
            update=_set(
                finance_thresholds=self.finance_threshold,
                controller_thresholds=self.controller_threshold,
                max_discount_percent=self.max_discount_percent,
                approvers=self.approvers,
                escalate_after=_seconds(self.approval_escalate_after_seconds),
                expire_after=_seconds(self.approval_expire_after_seconds),
                identity_keys=self.identity_keys or None,
            )
        )

    def dunning_policies(self, default_day: timedelta | None = None) -> DunningPolicies:
        """The dunning day of O2C_DUNNING_DAY_SECONDS applies to every policy (a whole calendar
        in minutes on a test stack); `default_day` applies when the variable is not set."""
        policies = self.dunning_policies_in_file or DunningPolicies()
        day = default_day if self.dunning_day_seconds is None else timedelta(seconds=self.dunning_day_seconds)
        if day is None:
            return policies
        return policies.model_copy(
            update={
                "default": policies.default.model_copy(update={"day": day}),
                "segments": {k: v.model_copy(update={"day": day}) for k, v in policies.segments.items()},
            }
        )

    @property
    def renewal_policy(self) -> RenewalPolicy:
        """The renewal day is 86400 s in production; a test stack brings the start day forward by
        shortening it."""
        day = None if self.renewal_day_seconds is None else timedelta(seconds=self.renewal_day_seconds)
        return RenewalPolicy().model_copy(update=_set(uplift_cap_percent=self.renewal_uplift_cap, day=day))

    @property
    def erp_access(self) -> dict[str, Any]:
        """Where each ERP is and who o2c is there: adapters.erp_routing.routed_erp's keywords."""
        return dict(
            netsuite_base_url=self.netsuite_base_url,
            netsuite_token=self.netsuite_token,
            sap_base_url=self.sap_base_url,
            sap_user=self.sap_user,
            sap_password=self.sap_password,
            sap_logical_system=self.sap_logical_system,
            timeout=self.http_timeout_seconds,
        )

    @property
    def legal_entities(self) -> list[LegalEntity]:
        """By default one US entity booking in USD on the platform's own Stripe account and
        NetSuite subsidiary 1."""
        return list(self.legal_entities_in_file or DEFAULT_ENTITIES)

    @property
    def reconciliation_policy(self) -> ReconciliationPolicy:
        policy = self.reconciliation_policy_in_file or ReconciliationPolicy()
        minor = self.recon_tolerance_minor
        tolerance = None if minor is None else Tolerance(amount_minor=minor, tax_minor=minor, revenue_minor=minor)
        updates = _set(tolerance=tolerance, heal_limits=self.recon_heal_limit)
        return ReconciliationPolicy.model_validate({**policy.model_dump(), **updates}) if updates else policy

    @property
    def credit_policy(self) -> CreditPolicy:
        """The thresholds of credits, service credits and refunds; canonical's table unless a file says."""
        return self.credit_policy_in_file or CreditPolicy()

    @property
    def dispute_policy(self) -> DisputePolicy:
        return self.dispute_policy_in_file or DisputePolicy()

    @property
    def usage_policy(self) -> UsagePolicy:
        policy = self.usage_policy_in_file or UsagePolicy()
        return policy.model_copy(update=_set(spike_threshold=self.usage_spike_threshold))


def _set(**values: Any) -> dict[str, Any]:
    """The values a variable set, to update a canonical default with."""
    return {name: value for name, value in values.items() if value is not None}


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def _problems(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        if problem["type"] == "default_factory_not_called":  # follows from another problem listed
            continue
        where = ".".join(str(part) for part in problem["loc"])
        got = f" (got {problem['input']!r})" if isinstance(problem["input"], str) else ""
        # A problem of several variables together (a model validator's) names them itself.
        lines.append(f"{where}: {problem['msg']}{got}" if where else problem["msg"])
    return "invalid settings:\n  " + "\n  ".join(lines)
