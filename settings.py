"""Configuration from the environment, with defaults that make the embedded stack work."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

SANDBOX_DEFAULT_URL = "http://127.0.0.1:8700"

# Each adapter's base URL: the variable that points it at the real system, and its path
# on the sandbox when that variable is not set.
SANDBOX_PATHS = {
    "stripe_base_url": ("O2C_STRIPE_BASE_URL", "/stripe/v1"),
    "avatax_base_url": ("O2C_AVATAX_BASE_URL", "/avatax"),
    "netsuite_base_url": ("O2C_NETSUITE_BASE_URL", "/netsuite/services/rest"),
    "entitlements_base_url": ("O2C_ENTITLEMENTS_BASE_URL", "/entitlements/v1"),
    "notifications_base_url": ("O2C_NOTIFICATIONS_BASE_URL", "/notifications/v1"),
    "crm_base_url": ("O2C_SALESFORCE_BASE_URL", "/salesforce/services/data/v60.0"),
}


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

    def on_sandbox(self, url: str) -> Settings:
        """The same settings with every adapter pointed at the sandbox at `url`."""
        url = url.rstrip("/")
        return replace(self, sandbox_url=url, **{name: f"{url}{path}" for name, (_, path) in SANDBOX_PATHS.items()})

    @classmethod
    def from_env(cls) -> Settings:
        sandbox = _env("O2C_SANDBOX_URL", SANDBOX_DEFAULT_URL).rstrip("/")
        state_dir = Path(_env("O2C_STATE_DIR", ".o2c"))
        return cls(
            **{name: _env(var, f"{sandbox}{path}").rstrip("/") for name, (var, path) in SANDBOX_PATHS.items()},
            temporal_address=_env("O2C_TEMPORAL_ADDRESS", "127.0.0.1:7233"),
            temporal_namespace=_env("O2C_TEMPORAL_NAMESPACE", "default"),
            temporal_api_key=_env("O2C_TEMPORAL_API_KEY"),
            temporal_tls=_env("O2C_TEMPORAL_TLS", "").lower() in ("1", "true", "yes"),
            task_queue=_env("O2C_TASK_QUEUE", "o2c"),
            ui_url=_env("O2C_TEMPORAL_UI_URL", "http://127.0.0.1:8233").rstrip("/"),
            state_dir=state_dir,
            database_url=_env("O2C_DATABASE_URL") or f"sqlite:///{(state_dir / 'o2c.sqlite').resolve()}",
            sandbox_url=sandbox,
            stripe_api_key=_env("O2C_STRIPE_API_KEY", "sk_test_o2c_sandbox"),
            avatax_account_id=_env("O2C_AVATAX_ACCOUNT_ID", "o2c"),
            avatax_license_key=_env("O2C_AVATAX_LICENSE_KEY", "sandbox"),
            avatax_company_code=_env("O2C_AVATAX_COMPANY_CODE", "US01"),
            netsuite_token=_env("O2C_NETSUITE_TOKEN", "sandbox-token"),
            crm_token=_env("O2C_SALESFORCE_TOKEN", "sandbox-token"),
            http_timeout_seconds=float(_env("O2C_HTTP_TIMEOUT_SECONDS", "10")),
            stripe_webhook_secret=_env("O2C_STRIPE_WEBHOOK_SECRET"),
            webhook_host=_env("O2C_WEBHOOK_HOST", "127.0.0.1"),
            webhook_port=int(_env("O2C_WEBHOOK_PORT", "8710")),
        )
