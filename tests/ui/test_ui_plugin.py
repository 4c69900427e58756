"""The "Roger → e-conomic" UI plugin, inside Airflow's own FastAPI app (in-process, no server).

Airflow's home, plugins folder and SQLite DBs come from ``tests/conftest.py``
(set before anything imports Airflow); this module adds the auth manager
settings the same way, at import time. The app is built with
``airflow.api_fastapi.app.create_app`` so the plugin is mounted exactly as the
api-server mounts it, and requests carry a JWT issued by SimpleAuthManager.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

os.environ.update({
    "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
    "AIRFLOW__API_AUTH__JWT_SECRET": "roger-economic-ui-tests-only-" + "x" * 48,
    "AIRFLOW__API__EXPOSE_CONFIG": "False",
})

AID, OTHER = "agr_0001", "agr_0002"
PREFIX = "/roger-economic"
HTML = {"Accept": "text/html"}
SITE = "http://testserver"  # the TestClient's own origin: its forms come from here


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def airflow_app(airflow_db):
    from airflow import plugins_manager
    from airflow.api_fastapi.app import create_app, purge_cached_app

    plugins, errors = plugins_manager._get_plugins()
    assert not {p: e for p, e in errors.items() if "roger_economic_ui" in p}, errors
    assert "roger_economic_ui" in {p.name for p in plugins}
    app = create_app("core")
    yield app
    purge_cached_app()


@pytest.fixture(scope="module")
def tokens(airflow_app) -> dict[str, str]:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    am = get_auth_manager()
    return {role: am.generate_jwt(SimpleAuthManagerUser(username=role, role=role)) for role in ("admin", "viewer")}


@pytest.fixture()
def anon(airflow_app):
    from fastapi.testclient import TestClient

    with TestClient(airflow_app, follow_redirects=False, headers={"Origin": SITE}) as client:
        yield client


@pytest.fixture()
def admin(airflow_app, tokens):
    """A browser logged in as admin: the JWT in the ``_token`` cookie, as Airflow's login sets it; its posts come
    from the plugin's pages (Origin) with the session's CSRF token, as the pages' forms send them."""
    from fastapi.testclient import TestClient

    with TestClient(airflow_app, follow_redirects=False, cookies={"_token": tokens["admin"]},
                    headers={"Origin": SITE, "X-CSRF-Token": _csrf("admin")}) as client:
        yield client


def _csrf(role: str) -> str:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from roger_economic_ui import security

    return security.csrf_token(SimpleAuthManagerUser(username=role, role=role))


@pytest.fixture()
def viewer(airflow_app, tokens):
    from fastapi.testclient import TestClient

    with TestClient(airflow_app, follow_redirects=False,
                    headers={"Authorization": f"Bearer {tokens['viewer']}"}) as client:
        yield client


@pytest.fixture()
def seeded(project_db) -> str:
    seed(project_db)
    return project_db


def seed(url: str, extra_agreements: int = 0) -> None:
    from tests import factories

    from roger_economic import masterdata
    from roger_economic.config import save_mappings
    from roger_economic.db import models, session
    from sandboxes import world

    now = datetime.now(UTC)
    names = {AID: "Hansen Tømrer ApS", OTHER: "Jensen & Søn <Revision>"}
    names |= {f"bulk_{i:04d}": f"Bulk Client {i:04d}" for i in range(extra_agreements)}
    with session(url) as sess:
        for n, (aid, name) in enumerate(names.items(), start=1):
            sess.add(models.Agreement(
                id=aid, name=name, active=True, roger_company_id=world.company_id(min(n, 3)),
                roger_token_ref="env:ROGER", economic_token_ref="env:ECONOMIC", invoice_journal=2, payment_journal=3,
                default_account=None, supplier_policy="create", supplier_group=1, payment_terms=1,
                closed_period_policy="quarantine", book_without_attachment=False, updated_at=now))
        sess.flush()
        for aid in (AID, OTHER):
            masterdata.save(sess, aid, factories.snapshots(1))
            save_mappings(sess, aid, {"cat_office": (2750, None), "cat_software": (2760, "I25")},
                          {"pm_bank": 5820, "pm_credit": 6600})
        sess.add(models.AgreementStatus(
            agreement_id=AID, scanning_addon=True, api_access=True, master_data_at=now,
            mapping_gaps=[{"kind": "category", "item": "cat_marketing", "message": "not mapped", "stops": "bills"}],
            last_run_id="scheduled__2026-11-26T05:00:00+00:00", last_run_at=now, last_outcome="ok",
            last_counts={"seen": 3, "invoices": 1, "payments": 0, "quarantined": 1, "waiting": 0}))
        sess.add(models.AgreementStatus(
            agreement_id=OTHER, scanning_addon=False, api_access=False, master_data_error="token rejected",
            mapping_gaps=[], last_run_id="scheduled__2026-11-26T05:00:00+00:00", last_run_at=now,
            last_outcome="failed", last_message="load: e-conomic answered 500", last_counts={}))
        # one quarantined bill (its category has no mapping), one booked bill
        sess.add(models.StagedBill(
            agreement_id=AID, bill_id="bill_Q1", version=1, state="quarantined", staged_at=now,
            payload=factories.bill(id="bill_Q1", category_id="cat_marketing"), updated_at="2026-10-05T09:00:00Z"))
        sess.add(models.Quarantine(
            agreement_id=AID, bill_id="bill_Q1", bill_version=1, entry_kind="invoice", rule="category_mapped",
            severity="stop", value="cat_marketing", message="category cat_marketing is not mapped",
            first_seen=now, last_seen=now))
        sess.add(models.StagedBill(
            agreement_id=AID, bill_id="bill_B1", version=1, state="booked", staged_at=now - timedelta(days=1),
            payload=factories.bill(id="bill_B1"), updated_at="2026-10-04T09:00:00Z"))
        sess.add(models.Posting(
            agreement_id=AID, bill_id="bill_B1", bill_version=1, entry_kind="invoice", idempotency_key="k-b1-inv",
            status="posted", journal_number=2, accounting_year="2026", payload={}, payload_hash="h",
            voucher_number=10042, attachment="attached", created_at=now, posted_at=now))
        for i in range(35):  # more runs than the chart shows
            run_id, at = f"scheduled__run_{i:02d}", now - timedelta(hours=35 - i)
            sess.add(models.RunReport(run_id=run_id, agreement_id=AID, phase="validate", outcome="ok",
                                      counts={"quarantined": i % 3, "invoices_planned": 2}, finished_at=at))
            sess.add(models.RunReport(run_id=run_id, agreement_id=AID, phase="load", outcome="ok",
                                      counts={"invoices_booked": 2, "payments_booked": i % 2}, finished_at=at))


def _setup_form(**changes: Any) -> dict[str, str]:
    """The setup form as the page submits it for AID, plus changes."""
    form = {
        "invoice_journal": "2", "payment_journal": "3", "default_account": "", "supplier_policy": "create",
        "supplier_group": "1", "payment_terms": "1", "default_supplier": "", "closed_period_policy": "quarantine",
        "cat_account__cat_office": "2750", "cat_account__cat_software": "2760", "cat_vat__cat_software": "I25",
        "pm_account__pm_bank": "5820", "pm_account__pm_credit": "6600",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def _mappings(url: str) -> tuple[dict[str, tuple[int, str | None]], dict[str, int]]:
    from sqlalchemy import select

    from roger_economic.db import models, session

    with session(url) as sess:
        cats = {m.category_id: (m.account_number, m.vat_code) for m in sess.scalars(
            select(models.CategoryMapping).where(models.CategoryMapping.agreement_id == AID))}
        methods = {m.method_id: m.account_number for m in sess.scalars(
            select(models.PaymentMethodMapping).where(models.PaymentMethodMapping.agreement_id == AID))}
    return cats, methods


def _options(html: str, select_name: str) -> set[str]:
    import re

    start = html.index(f'<select name="{select_name}">')
    block = html[start:html.index("</select>", start)]
    return {v for v in re.findall(r'<option value="([^"]*)"', block) if v}


# ------------------------------------------------------------------------------------------------ tests


def test_plugin_is_registered_with_app_and_nav_entry(airflow_app, admin):
    from roger_economic_ui import RogerEconomicUIPlugin

    plugin = RogerEconomicUIPlugin
    assert plugin.fastapi_apps[0]["url_prefix"] == PREFIX
    view = plugin.external_views[0]
    assert view["href"].endswith(f"{PREFIX}/") and view["destination"] == "nav" and view["url_route"]
    listed = admin.get("/api/v2/plugins").json()["plugins"]
    mine = next(p for p in listed if p["name"] == "roger_economic_ui")
    assert mine["fastapi_apps"][0]["url_prefix"] == PREFIX
    assert mine["external_views"][0]["name"] == "Roger → e-conomic"


def test_anonymous_requests_are_refused(anon, seeded):
    for path in ("/", f"/agreements/{AID}", f"/agreements/{AID}/bills"):
        assert anon.get(PREFIX + path).status_code == 401
        browser = anon.get(PREFIX + path, headers=HTML)  # a browser goes to Airflow's login page
        assert browser.status_code in (302, 303, 307) and "/auth/login" in browser.headers["location"]
    assert anon.post(f"{PREFIX}/agreements/{AID}", data=_setup_form()).status_code == 401
    assert anon.post(f"{PREFIX}/agreements/{AID}/bills/resync-quarantined").status_code == 401
    bad = anon.get(PREFIX + "/", headers={"Authorization": "Bearer not-a-jwt"})
    assert bad.status_code in (401, 403)


def test_overview_lists_agreements_with_counts_and_chart(admin, seeded):
    res = admin.get(PREFIX + "/")
    assert res.status_code == 200, res.text
    html = res.text
    assert "Hansen Tømrer ApS" in html
    assert "Jensen &amp; Søn &lt;Revision&gt;" in html and "<Revision>" not in html  # escaped
    assert "<svg" in html and html.count('class="bar-booked"') == 30 and html.count('class="bar-quarantined"') == 30
    assert "scheduled__run_34" in html and "scheduled__run_04" not in html  # the newest 30 runs only
    assert "no access" in html  # API status of OTHER

    failed = admin.get(PREFIX + "/", params={"outcome": "failed"}).text
    assert "Jensen" in failed and "Hansen" not in failed
    found = admin.get(PREFIX + "/", params={"q": "hansen"}).text
    assert "Hansen" in found and "Jensen" not in found


def test_overview_pages_through_many_agreements(admin, project_db):
    seed(project_db, extra_agreements=520)
    first = admin.get(PREFIX + "/").text
    assert "page 1 of 11 (522 in all)" in first and "Bulk Client 0049" in first and "Bulk Client 0050" not in first
    last = admin.get(PREFIX + "/", params={"page": 11}).text
    assert "Jensen" in last and "page 11 of 11" in last
    narrowed = admin.get(PREFIX + "/", params={"q": "Bulk Client 051", "outcome": "never"}).text
    assert "(10 in all)" in narrowed


def test_setup_page_offers_only_bookable_accounts(admin, seeded):
    res = admin.get(f"{PREFIX}/agreements/{AID}")
    assert res.status_code == 200, res.text
    html = res.text
    for name in ("default_account", "cat_account__cat_marketing", "pm_account__pm_bank"):
        offered = _options(html, name)
        assert {"2750", "2200", "3990", "5820", "6600"} <= offered, name
        assert not offered & {"2795", "2796", "1000", "1399", "7000"}, name  # barred, blocked, heading, sum
    assert _options(html, "invoice_journal") == {"1", "2", "3", "4"}
    assert "I25" in _options(html, "cat_vat__cat_software")
    assert "cat_marketing" in html and "Mapping gaps" in html
    assert 'value="2750" selected' in html.replace("\n", "")


def test_saving_a_mapping_stores_it_and_the_bill_log_offers_resync(admin, seeded):
    res = admin.post(f"{PREFIX}/agreements/{AID}", data=_setup_form(
        cat_account__cat_marketing="2200", cat_vat__cat_marketing="I25", pm_account__pm_debit="5830"))
    assert res.status_code == 303, res.text
    cats, methods = _mappings(seeded)
    assert cats["cat_marketing"] == (2200, "I25") and cats["cat_office"] == (2750, None)
    assert methods == {"pm_bank": 5820, "pm_credit": 6600, "pm_debit": 5830}
    page = admin.get(res.headers["location"]).text
    assert "Saved." in page

    log = admin.get(f"{PREFIX}/agreements/{AID}/bills")
    assert log.status_code == 200
    html = log.text
    assert "bill_Q1" in html and "category_mapped" in html and "category cat_marketing is not mapped" in html
    assert f'action="{PREFIX}/agreements/{AID}/bills/bill_Q1/resync"' in html.replace("\n", "")
    assert "Re-sync all" in html and "10042" in html  # the booked bill's voucher

    resync = admin.post(f"{PREFIX}/agreements/{AID}/bills/bill_Q1/resync")
    assert resync.status_code == 303
    assert _bill_states(seeded) == {"bill_Q1": "new", "bill_B1": "booked"}


def test_invalid_setup_shows_errors_and_stores_nothing(admin, seeded):
    before = _mappings(seeded)
    res = admin.post(f"{PREFIX}/agreements/{AID}", data=_setup_form(
        cat_account__cat_marketing="2795", pm_account__pm_bank="2796", invoice_journal="3"))
    assert res.status_code == 400
    html = res.text
    assert "Not saved" in html and "2795 is barred" in html and "blocks direct entries" in html
    assert "only takes supplierPayment entries" in html
    assert _mappings(seeded) == before
    missing = admin.post(f"{PREFIX}/agreements/{AID}", data=_setup_form(pm_account__pm_bank="9999"))
    assert missing.status_code == 400 and "9999 is unknown" in missing.text
    assert _mappings(seeded) == before


def test_viewer_may_read_but_not_change(viewer, seeded):
    assert viewer.get(PREFIX + "/").status_code == 200
    assert viewer.get(f"{PREFIX}/agreements/{AID}/bills").status_code == 200
    assert viewer.post(f"{PREFIX}/agreements/{AID}", data=_setup_form(
        cat_account__cat_marketing="2200")).status_code == 403
    assert viewer.post(f"{PREFIX}/agreements/{AID}/bills/resync-quarantined").status_code == 403
    assert viewer.post(f"{PREFIX}/agreements/{AID}/refresh").status_code == 403
    assert "cat_marketing" not in _mappings(seeded)[0]
    assert _bill_states(seeded)["bill_Q1"] == "quarantined"


def test_refresh_master_data_triggers_the_dag_for_that_agreement(admin, seeded, monkeypatch):
    from roger_economic_ui import app as ui

    calls = []

    def fake_trigger(agreement_id, user):
        calls.append((agreement_id, user.get_name()))
        return "manual__test"

    monkeypatch.setattr(ui, "trigger_master_data_refresh", fake_trigger)
    res = admin.post(f"{PREFIX}/agreements/{AID}/refresh")
    assert res.status_code == 303
    assert calls == [(AID, "admin")]
    assert "manual__test" in admin.get(res.headers["location"]).text
    assert admin.post(f"{PREFIX}/agreements/nope/refresh").status_code == 404


def test_trigger_uses_airflows_trigger_with_the_agreement_conf(monkeypatch):
    from airflow.api.common import trigger_dag as module
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from roger_economic_ui import app as ui

    seen: dict[str, Any] = {}

    class Run:
        run_id = "manual__x"

    def fake(dag_id, **kwargs):
        seen.update(dag_id=dag_id, **kwargs)
        return Run()

    monkeypatch.setattr(module, "trigger_dag", fake)
    assert ui.trigger_master_data_refresh(AID, SimpleAuthManagerUser(username="admin", role="admin")).startswith(
        "manual__x")
    assert seen["dag_id"] == "roger_master_data" and seen["conf"] == {"agreements": [AID]}
    assert seen["triggering_user_name"] == "admin"


def test_bulk_resync_of_quarantined_bills(admin, seeded):
    res = admin.post(f"{PREFIX}/agreements/{AID}/bills/resync-quarantined")
    assert res.status_code == 303
    assert "1 quarantined bill(s)" in admin.get(res.headers["location"]).text
    assert _bill_states(seeded) == {"bill_Q1": "new", "bill_B1": "booked"}
    assert admin.get(f"{PREFIX}/agreements/unknown").status_code == 404


def _bill_states(url: str) -> dict[str, str]:
    from sqlalchemy import select

    from roger_economic.db import models, session

    with session(url) as sess:
        return dict(sess.execute(select(models.StagedBill.bill_id, models.StagedBill.state).where(
            models.StagedBill.agreement_id == AID)).all())


def test_data_docs_of_the_last_validation_are_linked_and_served(admin, anon, seeded, monkeypatch, tmp_path):
    from roger_economic_ui import app as ui

    monkeypatch.setattr(ui, "DATA_DOCS", tmp_path)
    page = tmp_path / "validations" / "booking_rules" / "run1" / "batch.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html>booking_rules validation</html>", encoding="utf-8")
    (tmp_path.parent / "secret.txt").write_text("not for the web", encoding="utf-8")

    served = admin.get("/roger-economic/data-docs/validations/booking_rules/run1/batch.html")
    assert served.status_code == 200 and "booking_rules validation" in served.text
    assert admin.get("/roger-economic/data-docs/../secret.txt").status_code == 404
    assert admin.get("/roger-economic/data-docs/%2e%2e/secret.txt").status_code == 404
    assert anon.get("/roger-economic/data-docs/validations/booking_rules/run1/batch.html").status_code == 401
