"""Where o2c connects to Temporal: o2c's own O2C_TEMPORAL_* over the TEMPORAL_* variables, over
the `temporal` CLI profile, over the embedded stack's defaults (adapters/temporal.py)."""

from __future__ import annotations

import os

import pytest
from temporalio.service import TLSConfig

from settings import Settings
from starter.client import temporal_config

PROFILES = """
[profile.default]
address = "profile-host:7233"
namespace = "profile-ns"

[profile.cloud]
address = "acme.a1b2c.tmprl.cloud:7233"
namespace = "acme.a1b2c"
api_key = "profile-key"

[profile.mtls]
address = "mtls.tmprl.cloud:7233"
namespace = "mtls"
[profile.mtls.tls]
server_name = "mtls.tmprl.cloud"
"""


@pytest.fixture
def environment(monkeypatch, tmp_path):
    """Nothing from the machine running the tests: no O2C_* or TEMPORAL_* variable, and a
    profile file of the test's own (absent until a test writes it)."""
    for name in os.environ:
        if name.startswith(("O2C_", "TEMPORAL_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "temporal.toml"))
    return monkeypatch


@pytest.fixture
def profiles(environment, tmp_path):
    (tmp_path / "temporal.toml").write_text(PROFILES)
    return environment


def config():
    return temporal_config(Settings.from_env())


def test_with_nothing_configured_the_embedded_stack(environment):
    assert config() == {"target_host": "127.0.0.1:7233", "namespace": "default"}


def test_the_default_profile_of_the_cli_configuration_file(profiles):
    assert config() == {"target_host": "profile-host:7233", "namespace": "profile-ns"}


def test_a_named_profile_with_an_api_key_implies_tls(profiles):
    profiles.setenv("TEMPORAL_PROFILE", "cloud")
    assert config() == {
        "target_host": "acme.a1b2c.tmprl.cloud:7233",
        "namespace": "acme.a1b2c",
        "api_key": "profile-key",
        "tls": True,
    }


def test_temporal_variables_override_the_profile(profiles):
    profiles.setenv("TEMPORAL_PROFILE", "cloud")
    profiles.setenv("TEMPORAL_NAMESPACE", "env-ns")
    profiles.setenv("TEMPORAL_API_KEY", "env-key")
    resolved = config()
    assert (resolved["target_host"], resolved["namespace"], resolved["api_key"]) == (
        "acme.a1b2c.tmprl.cloud:7233",
        "env-ns",
        "env-key",
    )


def test_o2c_variables_override_temporal_variables_and_the_profile(profiles):
    profiles.setenv("TEMPORAL_PROFILE", "cloud")
    profiles.setenv("TEMPORAL_ADDRESS", "env-host:7233")
    profiles.setenv("TEMPORAL_NAMESPACE", "env-ns")
    profiles.setenv("O2C_TEMPORAL_ADDRESS", "o2c-host:7233")
    profiles.setenv("O2C_TEMPORAL_NAMESPACE", "o2c-ns")
    profiles.setenv("O2C_TEMPORAL_API_KEY", "o2c-key")
    assert config() == {"target_host": "o2c-host:7233", "namespace": "o2c-ns", "api_key": "o2c-key", "tls": True}


def test_an_o2c_api_key_implies_tls_unless_tls_is_switched_off(environment):
    environment.setenv("O2C_TEMPORAL_API_KEY", "o2c-key")
    assert config()["tls"] is True
    environment.setenv("O2C_TEMPORAL_TLS", "false")
    assert config()["tls"] is False


def test_o2c_tls_keeps_the_profiles_tls_settings(profiles):
    profiles.setenv("TEMPORAL_PROFILE", "mtls")
    profiles.setenv("O2C_TEMPORAL_TLS", "true")
    tls = config()["tls"]
    assert isinstance(tls, TLSConfig) and tls.domain == "mtls.tmprl.cloud"


def test_o2c_tls_switches_tls_on_over_temporal_tls_off(environment):
    environment.setenv("TEMPORAL_TLS", "false")
    assert config()["tls"] is False
    environment.setenv("O2C_TEMPORAL_TLS", "1")
    assert config()["tls"] is True
