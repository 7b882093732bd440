"""Configuration from the environment, with defaults that make the embedded stack work."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

SANDBOX_DEFAULT_URL = "http://127.0.0.1:8700"


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class Settings:
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_api_key: str = ""
    temporal_tls: bool = False
    task_queue: str = "o2c"
    ui_url: str = "http://127.0.0.1:8233"
    state_dir: Path = Path(".o2c")
    database_url: str = ""
    sandbox_url: str = SANDBOX_DEFAULT_URL
    stripe_base_url: str = ""
    stripe_api_key: str = "sk_test_o2c_sandbox"
    avatax_base_url: str = ""
    avatax_account_id: str = "o2c"
    avatax_license_key: str = "sandbox"
    avatax_company_code: str = "US01"
    netsuite_base_url: str = ""
    netsuite_token: str = "sandbox-token"
    entitlements_base_url: str = ""
    notifications_base_url: str = ""
    crm_base_url: str = ""
    crm_token: str = "sandbox-token"
    http_timeout_seconds: float = 10.0
    # The Stripe webhook ingress (`o2c webhooks`): the endpoint's signing secret and where to listen.
    stripe_webhook_secret: str = ""
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8710
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> "Settings":
        sandbox = _env("O2C_SANDBOX_URL", SANDBOX_DEFAULT_URL).rstrip("/")
        state_dir = Path(_env("O2C_STATE_DIR", ".o2c"))
        return cls(
            temporal_address=_env("O2C_TEMPORAL_ADDRESS", "127.0.0.1:7233"),
            temporal_namespace=_env("O2C_TEMPORAL_NAMESPACE", "default"),
            temporal_api_key=_env("O2C_TEMPORAL_API_KEY"),
            temporal_tls=_env("O2C_TEMPORAL_TLS", "").lower() in ("1", "true", "yes"),
            task_queue=_env("O2C_TASK_QUEUE", "o2c"),
            ui_url=_env("O2C_TEMPORAL_UI_URL", "http://127.0.0.1:8233").rstrip("/"),
            state_dir=state_dir,
            database_url=_env("O2C_DATABASE_URL") or f"sqlite:///{(state_dir / 'o2c.sqlite').resolve()}",
            sandbox_url=sandbox,
            stripe_base_url=_env("O2C_STRIPE_BASE_URL", f"{sandbox}/stripe/v1").rstrip("/"),
            stripe_api_key=_env("O2C_STRIPE_API_KEY", "sk_test_o2c_sandbox"),
            avatax_base_url=_env("O2C_AVATAX_BASE_URL", f"{sandbox}/avatax").rstrip("/"),
            avatax_account_id=_env("O2C_AVATAX_ACCOUNT_ID", "o2c"),
            avatax_license_key=_env("O2C_AVATAX_LICENSE_KEY", "sandbox"),
            avatax_company_code=_env("O2C_AVATAX_COMPANY_CODE", "US01"),
            netsuite_base_url=_env(
                "O2C_NETSUITE_BASE_URL", f"{sandbox}/netsuite/services/rest"
            ).rstrip("/"),
            netsuite_token=_env("O2C_NETSUITE_TOKEN", "sandbox-token"),
            entitlements_base_url=_env("O2C_ENTITLEMENTS_BASE_URL", f"{sandbox}/entitlements/v1").rstrip("/"),
            notifications_base_url=_env("O2C_NOTIFICATIONS_BASE_URL", f"{sandbox}/notifications/v1").rstrip("/"),
            crm_base_url=_env("O2C_SALESFORCE_BASE_URL", f"{sandbox}/salesforce/services/data/v60.0").rstrip("/"),
            crm_token=_env("O2C_SALESFORCE_TOKEN", "sandbox-token"),
            http_timeout_seconds=float(_env("O2C_HTTP_TIMEOUT_SECONDS", "10")),
            stripe_webhook_secret=_env("O2C_STRIPE_WEBHOOK_SECRET"),
            webhook_host=_env("O2C_WEBHOOK_HOST", "127.0.0.1"),
            webhook_port=int(_env("O2C_WEBHOOK_PORT", "8710")),
        )
