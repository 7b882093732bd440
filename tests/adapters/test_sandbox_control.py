from __future__ import annotations

import httpx

from adapters.storage import db


def test_summary_and_records_describe_the_state(sandbox, seeded):
    summary = sandbox.summary()
    assert summary["stripe"]["customer"]["total"] == 1
    assert summary["stripe"]["subscription"] == {"total": 1, "by_status": {"active": 1}}
    assert set(summary) >= {"stripe", "avatax", "netsuite", "entitlements", "notifications", "faults"}
    [sub] = sandbox.records("stripe", "subscription")
    assert sub["metadata"] == {"contract_id": "C-100", "term_start": "2025-01-01", "term_end": "2026-01-01"}
    assert sub["items"]["data"][0]["price"]["unit_amount_decimal"] == "5000"
    assert sub["items"]["data"][1]["metadata"]["discount_percent"] == "10"
    sandbox.reset()
    assert sandbox.records("stripe", "subscription") == []


def test_faults_are_listed_with_counts_and_cleared(sandbox):
    created = sandbox.fault("*", "latency", latency_ms=1, method="GET")
    assert created["id"].startswith("fault_")
    httpx.get(f"{sandbox.url}/notifications/v1/messages").raise_for_status()
    [listed] = sandbox.faults()
    assert listed["fired"] == 1
    sandbox.clear_faults()
    assert sandbox.faults() == []
    bad = httpx.post(f"{sandbox.url}/_sandbox/faults", json={"system": "stripe", "kind": "nonsense"})
    assert bad.status_code == 400


def test_seed_validates_and_periods_are_recorded(sandbox):
    response = httpx.post(f"{sandbox.url}/_sandbox/seed", json={"subscription": {"id": "sub_x"}})
    assert response.status_code == 400
    sandbox.set_period("1", "2025-02", closed=True)
    assert sandbox.summary()["netsuite"]["accountingPeriod"]["by_status"] == {"closed": 1}


def test_unknown_routes_answer_in_each_systems_shape(sandbox):
    stripe = httpx.get(f"{sandbox.url}/stripe/v1/nothing", auth=("sk_test_x", ""))
    assert stripe.status_code == 404 and "error" in stripe.json()
    netsuite = httpx.get(
        f"{sandbox.url}/netsuite/services/rest/record/v1/nothing", headers={"Authorization": "Bearer t"}
    )
    assert netsuite.status_code == 404 and "o:errorDetails" in netsuite.json()


def test_migrations_are_idempotent(sandbox):
    db.upgrade(sandbox.database_url)  # already at head: a no-op
    engine = db.engine_for(sandbox.database_url)
    try:
        with engine.connect() as conn:
            version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    finally:
        engine.dispose()
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(db.alembic_config())
    assert version == scripts.get_current_head()
    # The revisions that once made the sandbox's tables keep their ids: databases have them applied.
    assert "0003_sandbox_listing_index" in {rev.revision for rev in scripts.iterate_revisions(version, "base")}


def test_engine_for_rewrites_postgres_urls():
    assert db.normalize_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert db.normalize_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert db.normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_engine_for_creates_the_sqlite_directory(tmp_path):
    target = tmp_path / "deep" / "er" / "o2c.sqlite"
    db.upgrade(f"sqlite:///{target}")
    assert target.exists()
