"""The "Roger → e-conomic" UI plugin, inside Airflow's own FastAPI app (in-process, no server).

Airflow's home, plugins folder and SQLite DBs come from ``tests/conftest.py``
(set before anything imports Airflow); this module adds the auth manager
settings the same way, at import time. The app is built with
``airflow.api_fastapi.app.create_app`` so the plugin is mounted exactly as the
api-server mounts it, and requests carry a JWT issued by SimpleAuthManager.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

os.environ.update(
    {
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": "roger-economic-ui-tests-only-" + "x" * 48,
        "AIRFLOW__API__EXPOSE_CONFIG": "False",
    }
)

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

    with TestClient(
        airflow_app,
        follow_redirects=False,
        cookies={"_token": tokens["admin"]},
        headers={"Origin": SITE, "X-CSRF-Token": _csrf(tokens["admin"])},
    ) as client:
        yield client


def _csrf(jwt: str) -> str:
    """The CSRF token the pages give the login session of ``jwt`` (the ``_token`` cookie)."""
    from roger_economic_ui import security

    return security.csrf_token(security.session_id(jwt))


def _new_login(role: str) -> str:
    """The JWT of another login of ``role``'s user (Airflow's login writes a new one each time)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=role, role=role))


@pytest.fixture()
def viewer(airflow_app, tokens):
    from fastapi.testclient import TestClient

    with TestClient(
        airflow_app, follow_redirects=False, headers={"Authorization": f"Bearer {tokens['viewer']}"}
    ) as client:
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
            sess.add(
                models.Agreement(
                    id=aid,
                    name=name,
                    active=True,
                    roger_company_id=world.company_id(min(n, 3)),
                    roger_token_ref="env:ROGER",
                    economic_token_ref="env:ECONOMIC",
                    invoice_journal=2,
                    payment_journal=3,
                    default_account=None,
                    supplier_policy="create",
                    supplier_group=1,
                    payment_terms=1,
                    closed_period_policy="quarantine",
                    book_without_attachment=False,
                    updated_at=now,
                )
            )
        sess.flush()
        for aid in (AID, OTHER):
            masterdata.save(sess, aid, factories.snapshots(1))
            save_mappings(
                sess,
                aid,
                {"cat_office": (2750, None), "cat_software": (2760, "I25")},
                {"pm_bank": 5820, "pm_credit": 6600},
            )
        sess.add(
            models.AgreementStatus(
                agreement_id=AID,
                scanning_addon=True,
                api_access=True,
                master_data_at=now,
                mapping_gaps=[{"kind": "category", "item": "cat_marketing", "message": "not mapped", "stops": "bills"}],
                last_run_id="scheduled__2026-11-26T05:00:00+00:00",
                last_run_at=now,
                last_outcome="ok",
                last_counts={"seen": 3, "invoices": 1, "payments": 0, "quarantined": 1, "waiting": 0},
            )
        )
        sess.add(
            models.AgreementStatus(
                agreement_id=OTHER,
                scanning_addon=False,
                api_access=False,
                master_data_error="token rejected",
                mapping_gaps=[],
                last_run_id="scheduled__2026-11-26T05:00:00+00:00",
                last_run_at=now,
                last_outcome="failed",
                last_message="load: e-conomic answered 500",
                last_counts={},
            )
        )
        # one quarantined bill (its category has no mapping), one booked bill
        sess.add(
            models.StagedBill(
                agreement_id=AID,
                bill_id="bill_Q1",
                version=1,
                state="quarantined",
                staged_at=now,
                payload=factories.bill(id="bill_Q1", category_id="cat_marketing"),
                updated_at="2026-10-05T09:00:00Z",
            )
        )
        sess.add(
            models.Quarantine(
                agreement_id=AID,
                bill_id="bill_Q1",
                bill_version=1,
                entry_kind="invoice",
                rule="category_mapped",
                severity="stop",
                value="cat_marketing",
                message="category cat_marketing is not mapped",
                first_seen=now,
                last_seen=now,
            )
        )
        sess.add(
            models.StagedBill(
                agreement_id=AID,
                bill_id="bill_B1",
                version=1,
                state="booked",
                staged_at=now - timedelta(days=1),
                payload=factories.bill(id="bill_B1"),
                updated_at="2026-10-04T09:00:00Z",
            )
        )
        sess.add(
            models.Posting(
                agreement_id=AID,
                bill_id="bill_B1",
                bill_version=1,
                entry_kind="invoice",
                idempotency_key="k-b1-inv",
                status="posted",
                journal_number=2,
                accounting_year="2026",
                payload={},
                payload_hash="h",
                voucher_number=10042,
                attachment="attached",
                created_at=now,
                posted_at=now,
            )
        )
        for i in range(35):  # more runs than the chart shows
            run_id, at = f"scheduled__run_{i:02d}", now - timedelta(hours=35 - i)
            sess.add(
                models.RunReport(
                    run_id=run_id,
                    agreement_id=AID,
                    phase="validate",
                    outcome="ok",
                    counts={"quarantined": i % 3, "invoices_planned": 2},
                    finished_at=at,
                )
            )
            sess.add(
                models.RunReport(
                    run_id=run_id,
                    agreement_id=AID,
                    phase="load",
                    outcome="ok",
                    counts={"invoices_booked": 2, "payments_booked": i % 2},
                    finished_at=at,
                )
            )


def _version(aid: str = AID) -> str:
    """The setup version the page puts in its hidden field (read from the test's project DB)."""
    from roger_economic_ui.queries import setup_version

    from roger_economic.db import models, session

    with session() as sess:
        return setup_version(sess.get(models.Agreement, aid))


def _setup_form(**changes: Any) -> dict[str, str]:
    """The setup form as the page submits it for AID (with the current version), plus changes."""
    form = {
        "version": _version(),
        "invoice_journal": "2",
        "payment_journal": "3",
        "default_account": "",
        "supplier_policy": "create",
        "supplier_group": "1",
        "payment_terms": "1",
        "default_supplier": "",
        "closed_period_policy": "quarantine",
        "cat_account__cat_office": "2750",
        "cat_account__cat_software": "2760",
        "cat_vat__cat_software": "I25",
        "pm_account__pm_bank": "5820",
        "pm_account__pm_credit": "6600",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def _mappings(url: str) -> tuple[dict[str, tuple[int, str | None]], dict[str, int]]:
    from sqlalchemy import select

    from roger_economic.db import models, session

    with session(url) as sess:
        cats = {
            m.category_id: (m.account_number, m.vat_code)
            for m in sess.scalars(select(models.CategoryMapping).where(models.CategoryMapping.agreement_id == AID))
        }
        methods = {
            m.method_id: m.account_number
            for m in sess.scalars(
                select(models.PaymentMethodMapping).where(models.PaymentMethodMapping.agreement_id == AID)
            )
        }
    return cats, methods


def _options(html: str, select_name: str) -> set[str]:
    import re

    start = html.index(f'<select name="{select_name}">')
    block = html[start : html.index("</select>", start)]
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
    assert "page 1 of 11 (522 in all)" in first and "Bulk Client 0047" in first and "Bulk Client 0048" not in first
    # needing attention first: the failed agreement, then the one with a quarantined bill, then the never-run ones
    assert first.index("Jensen") < first.index("Hansen") < first.index("Bulk Client 0000")
    last = admin.get(PREFIX + "/", params={"page": 11}).text
    assert "Bulk Client 0519" in last and "page 11 of 11" in last and "Jensen" not in last
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
    res = admin.post(
        f"{PREFIX}/agreements/{AID}",
        data=_setup_form(cat_account__cat_marketing="2200", cat_vat__cat_marketing="I25", pm_account__pm_debit="5830"),
    )
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
    assert f'action="{PREFIX}/agreements/{AID}/bills/resync"' in html.replace("\n", "")
    assert 'name="bill_id" value="bill_Q1"' in html
    assert "Re-sync all" in html and "10042" in html  # the booked bill's voucher

    resync = admin.post(f"{PREFIX}/agreements/{AID}/bills/bill_Q1/resync")
    assert resync.status_code == 303
    assert _bill_states(seeded) == {"bill_Q1": "new", "bill_B1": "booked"}


def test_invalid_setup_shows_errors_and_stores_nothing(admin, seeded):
    before = _mappings(seeded)
    res = admin.post(
        f"{PREFIX}/agreements/{AID}",
        data=_setup_form(cat_account__cat_marketing="2795", pm_account__pm_bank="2796", invoice_journal="3"),
    )
    assert res.status_code == 400
    html = res.text
    assert "Not saved" in html and "2795 is barred" in html and "blocks direct entries" in html
    assert "only takes supplierPayment entries" in html
    assert _mappings(seeded) == before
    missing = admin.post(f"{PREFIX}/agreements/{AID}", data=_setup_form(pm_account__pm_bank="9999"))
    assert missing.status_code == 400 and "9999 is unknown" in missing.text
    assert _mappings(seeded) == before


def test_setup_page_applies_the_agreements_files_rules(admin, seeded):
    """The page and ``config load`` share one schema (roger_economic.config.SetupFields)."""
    import html as html_lib

    before = _mappings(seeded)
    res = admin.post(f"{PREFIX}/agreements/{AID}", data=_setup_form(payment_terms=""))
    assert res.status_code == 400
    assert "Supplier policy 'create' needs Supplier group and Payment terms" in html_lib.unescape(res.text)
    res = admin.post(f"{PREFIX}/agreements/{AID}", data=_setup_form(closed_period_policy="later", invoice_journal=""))
    assert res.status_code == 400
    page = html_lib.unescape(res.text)
    assert "Closed-period policy: Input should be 'quarantine' or 'next_open_date' (got 'later')" in page
    assert "Invoice journal: is required" in page
    assert _mappings(seeded) == before


def test_viewer_may_read_but_not_change(viewer, seeded):
    assert viewer.get(PREFIX + "/").status_code == 200
    assert viewer.get(f"{PREFIX}/agreements/{AID}/bills").status_code == 200
    assert (
        viewer.post(f"{PREFIX}/agreements/{AID}", data=_setup_form(cat_account__cat_marketing="2200")).status_code
        == 403
    )
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
        "manual__x"
    )
    assert seen["dag_id"] == "roger_master_data" and seen["conf"] == {"agreements": [AID]}
    assert seen["triggering_user_name"] == "admin"


def test_bulk_resync_of_quarantined_bills(admin, seeded):
    ask = admin.post(f"{PREFIX}/agreements/{AID}/bills/resync-quarantined", data={"state": "quarantined"})
    assert ask.status_code == 200 and "Re-sync 1 quarantined bill(s)" in ask.text  # asks first, changes nothing
    assert _bill_states(seeded)["bill_Q1"] == "quarantined"
    res = admin.post(
        f"{PREFIX}/agreements/{AID}/bills/resync-quarantined",
        data={"confirm": "yes", "expected": "1", "state": "quarantined"},
    )
    assert res.status_code == 303 and "state=quarantined" in res.headers["location"]
    assert "1 quarantined bill(s)" in admin.get(res.headers["location"]).text
    assert _bill_states(seeded) == {"bill_Q1": "new", "bill_B1": "booked"}
    assert admin.get(f"{PREFIX}/agreements/unknown").status_code == 404


def _bill_states(url: str) -> dict[str, str]:
    from sqlalchemy import select

    from roger_economic.db import models, session

    with session(url) as sess:
        return dict(
            sess.execute(
                select(models.StagedBill.bill_id, models.StagedBill.state).where(models.StagedBill.agreement_id == AID)
            ).all()
        )


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


# ------------------------------------------------------------------------------------------- setup: kept, lock, audit


def _submitted(html: str) -> dict[str, str]:
    """What a browser submits for the setup form as the page renders it (selected options, inputs, checkboxes)."""
    from html.parser import HTMLParser

    class Form(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.values: dict[str, str] = {}
            self.inside = False
            self.select: str | None = None
            self.first: str | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if tag == "form" and a.get("method") == "post" and not (a.get("action") or "").endswith("/refresh"):
                self.inside = True
            if not self.inside:
                return
            if tag == "select":
                self.select, self.first = a["name"], None
            elif tag == "option" and self.select:
                if self.first is None:
                    self.first = a.get("value") or ""
                    self.values.setdefault(self.select, self.first)
                if "selected" in a:
                    self.values[self.select] = a.get("value") or ""
            elif tag == "input" and a.get("name") and (a.get("type") != "checkbox" or "checked" in a):
                self.values[a["name"]] = a.get("value") or ""

        def handle_endtag(self, tag: str) -> None:
            if tag == "select":
                self.select = None
            elif tag == "form":
                self.inside = False

    parser = Form()
    parser.feed(html)
    return parser.values


def _store_mappings(
    url: str, categories: dict[str, tuple[int, str | None]], methods: dict[str, int], **agreement: Any
) -> None:
    from roger_economic.config import save_mappings
    from roger_economic.db import models, session

    with session(url) as sess:
        save_mappings(sess, AID, categories, methods)
        row = sess.get(models.Agreement, AID)
        for key, value in agreement.items():
            setattr(row, key, value)


def test_save_keeps_what_the_form_cannot_show_and_says_so(admin, seeded):
    # stored earlier, now unbookable: a barred account, a VAT code e-conomic dropped, a journal gone from master data
    _store_mappings(
        seeded,
        {
            "cat_office": (2750, None),
            "cat_software": (2760, "I25"),
            "cat_travel": (2795, None),
            "cat_phone": (2750, "X99"),
        },
        {"pm_bank": 5820, "pm_credit": 2796},
        payment_journal=9,
    )
    page = admin.get(f"{PREFIX}/agreements/{AID}").text
    travel = "category Rejser (cat_travel) → account 2795 (barred in e-conomic): fix or remove it explicitly"
    assert f"kept: {travel}" in page
    assert "→ account 2796 (blocks direct entries in e-conomic)" in page
    assert "VAT code X99 (unknown to e-conomic)" in page
    assert "supplier payment journal 9 (not in e-conomic&#39;s master data)" in page

    form = _submitted(page)  # exactly what SAVE sends when the accountant changes one thing
    form["cat_account__cat_marketing"] = "2200"
    res = admin.post(f"{PREFIX}/agreements/{AID}", data=form)
    assert res.status_code == 303, res.text
    cats, methods = _mappings(seeded)
    assert (
        cats["cat_travel"] == (2795, None)
        and cats["cat_phone"] == (2750, "X99")
        and cats["cat_marketing"] == (2200, None)
    )
    # the kept ones kept; the unmapped ones got the suggestions the page preselected, saved by this SAVE
    assert methods == {"pm_bank": 5820, "pm_credit": 2796, "pm_debit": 5830, "pm_mobilepay": 5840}
    saved = admin.get(res.headers["location"]).text
    assert f"Kept: {travel}" in saved
    from roger_economic.db import models, session

    with session(seeded) as sess:
        assert sess.get(models.Agreement, AID).payment_journal == 9

    # removing or fixing is explicit: "— not mapped —" removes, another account replaces
    form = _submitted(saved)
    form.update({"cat_account__cat_travel": "", "pm_account__pm_credit": "6600", "payment_journal": "3"})
    assert admin.post(f"{PREFIX}/agreements/{AID}", data=form).status_code == 303
    cats, methods = _mappings(seeded)
    assert "cat_travel" not in cats and methods["pm_credit"] == 6600 and cats["cat_phone"] == (2750, "X99")


def test_a_stale_form_is_refused_with_what_changed(admin, seeded):
    opened = _submitted(admin.get(f"{PREFIX}/agreements/{AID}").text)  # two accountants open the page
    first = dict(opened, cat_account__cat_marketing="2200")
    assert admin.post(f"{PREFIX}/agreements/{AID}", data=first).status_code == 303
    second = dict(opened, cat_account__cat_marketing="3990", cat_account__cat_office="2250")
    refused = admin.post(f"{PREFIX}/agreements/{AID}", data=second)
    assert refused.status_code == 409
    html = refused.text
    assert "nothing of yours was saved" in html
    assert re.search(r"Changed by admin at \d\d-\d\d-\d{4} \d\d:\d\d CES?T: category cat_marketing: — → 2200", html)
    assert "cat_account cat_marketing: 2200 → 3990" in html and "cat_account cat_office: 2750 → 2250" in html
    cats, _ = _mappings(seeded)
    assert cats["cat_marketing"] == (2200, None) and cats["cat_office"] == (2750, None)
    # the refused page carries the current version: redone from it, the save goes through
    again = dict(_submitted(html), cat_account__cat_marketing="3990")
    assert admin.post(f"{PREFIX}/agreements/{AID}", data=again).status_code == 303
    assert _mappings(seeded)[0]["cat_marketing"] == (3990, None)
    # a form that carries no version at all cannot prove what it saw
    bare = {k: v for k, v in again.items() if k != "version"}
    assert admin.post(f"{PREFIX}/agreements/{AID}", data=bare).status_code == 409


def test_saves_resyncs_and_refreshes_are_audited_latest_first(admin, seeded, monkeypatch):
    from roger_economic_ui import app as ui

    monkeypatch.setattr(ui, "trigger_master_data_refresh", lambda aid, user: "manual__audit")
    form = _submitted(admin.get(f"{PREFIX}/agreements/{AID}").text)
    assert (
        admin.post(
            f"{PREFIX}/agreements/{AID}", data=dict(form, cat_account__cat_marketing="2200", pm_account__pm_bank="5830")
        ).status_code
        == 303
    )
    assert admin.post(f"{PREFIX}/agreements/{AID}/bills/resync", data={"bill_id": "bill_Q1"}).status_code == 303
    assert admin.post(f"{PREFIX}/agreements/{AID}/refresh").status_code == 303
    html = admin.get(f"{PREFIX}/agreements/{AID}").text
    history = html[html.index('id="history"') :]
    rows = re.findall(r'<tr class="audit-(\w+)">(.*?)</tr>', history, re.S)
    assert [action for action, _ in rows] == ["refresh", "resync_bill", "save_setup"]
    assert all("admin" in body for _, body in rows)
    refresh, resync, save = (body for _, body in rows)
    assert "manual__audit" in refresh
    assert "re-synced bill bill_Q1" in resync and "state: quarantined → new" in resync
    assert "category cat_marketing: — → 2200" in save and "payment method pm_bank: 5820 → 5830" in save
    assert re.search(r"\d\d-\d\d-\d{4} \d\d:\d\d CES?T", save)


def test_a_file_load_is_audited_shown_and_named_to_a_form_it_made_stale(admin, seeded):
    """``config load --replace`` / ``--deactivate-missing`` change a setup like a save does: recorded with who
    (``cli:<OS user>``) and before → after, shown in the page's history, named when it makes an open form stale."""
    from roger_economic import config
    from roger_economic.db import session

    opened = _submitted(admin.get(f"{PREFIX}/agreements/{AID}").text)
    with session(seeded) as sess:
        stored = config.stored_config(sess, AID)
        cats = {**stored.categories, "cat_marketing": (2200, "I25")}
        changed = stored.model_copy(update={"default_account": 2800, "categories": cats})
        report = config.load(sess, [changed], replace=True, deactivate_missing=True, actor="cli:ops")
    assert list(report.replaced) == [AID] and report.missing == {OTHER: "deactivated"}
    history = admin.get(f"{PREFIX}/agreements/{AID}").text
    history = history[history.index('id="history"') :]
    rows = re.findall(r'<tr class="audit-(\w+)">(.*?)</tr>', history, re.S)
    assert [action for action, _ in rows] == ["config_replace"]
    body = rows[0][1]
    assert "cli:ops" in body and "config load --replace" in body
    assert "default_account: — → 2800" in body and "category cat_marketing: — → 2200 / I25" in body
    other = admin.get(f"{PREFIX}/agreements/{OTHER}").text
    assert "cli:ops" in other and "active: True → False" in other and "--deactivate-missing" in other

    refused = admin.post(f"{PREFIX}/agreements/{AID}", data=dict(opened, cat_account__cat_travel="2200"))
    assert refused.status_code == 409
    assert re.search(r"Changed by cli:ops at [^:]+:\d\d CES?T: category cat_marketing: — → 2200 / I25", refused.text)
    assert _mappings(seeded)[0]["cat_marketing"] == (2200, "I25")


# ------------------------------------------------------------------------------------------------ bill log


def _add_bill(url: str, bill_id: str, state: str, **changes: Any) -> None:
    from tests import factories

    from roger_economic.db import models, session

    with session(url) as sess:
        sess.add(
            models.StagedBill(
                agreement_id=AID,
                bill_id=bill_id,
                version=1,
                state=state,
                staged_at=datetime.now(UTC),
                payload=factories.bill(id=bill_id, **changes),
                updated_at="2026-10-05T09:00:00Z",
            )
        )


def test_resync_of_a_bill_id_with_a_slash_keeps_the_filter(admin, seeded):
    _add_bill(seeded, "bill/2026/7", "quarantined", **{"vendor.name": "Ærø Smedje"})
    html = admin.get(f"{PREFIX}/agreements/{AID}/bills", params={"state": "quarantined", "q": "smedje"}).text
    assert 'name="bill_id" value="bill/2026/7"' in html
    res = admin.post(
        f"{PREFIX}/agreements/{AID}/bills/resync",
        data={"bill_id": "bill/2026/7", "state": "quarantined", "q": "smedje", "page": "1"},
    )
    assert res.status_code == 303
    assert "state=quarantined" in res.headers["location"] and "q=smedje" in res.headers["location"]
    assert _bill_states(seeded)["bill/2026/7"] == "new"
    assert "Bill bill/2026/7 set back to new" in admin.get(res.headers["location"]).text


def test_resync_is_offered_only_where_it_does_something(admin, seeded):
    html = admin.get(f"{PREFIX}/agreements/{AID}/bills").text
    booked = html[html.index('id="bill-bill_B1"') :]
    booked = booked[: booked.index("</tr>")]
    assert "Re-sync" not in booked and "posted to e-conomic" in booked  # the state explained
    quarantined = html[html.index('id="bill-bill_Q1"') :]
    assert "Re-sync" in quarantined[: quarantined.index("</tr>")]
    res = admin.post(f"{PREFIX}/agreements/{AID}/bills/resync", data={"bill_id": "bill_B1"})
    assert res.status_code == 303 and "would change nothing" in admin.get(res.headers["location"]).text
    assert _bill_states(seeded)["bill_B1"] == "booked"
    assert admin.post(f"{PREFIX}/agreements/{AID}/bills/resync", data={"bill_id": "nope"}).status_code == 404


def test_bill_log_shows_danish_amounts_and_the_bills_dates(admin, seeded):
    _add_bill(
        seeded,
        "bill_P1",
        "booked",
        amount="12345.5",
        status="PAID",
        payment={"method_id": "pm_bank", "paid_date": "2026-10-18", "amount": "12345.50", "currency": "DKK"},
    )
    html = admin.get(f"{PREFIX}/agreements/{AID}/bills").text
    row = html[html.index('id="bill-bill_P1"') :]
    row = row[: row.index("</tr>")]
    assert "12.345,50 DKK" in row
    assert "issued 05-10-2026" in row and "due 20-10-2026" in row and "paid 18-10-2026" in row


# ------------------------------------------------------------------------------------------------ overview


def test_overview_says_why_an_agreement_needs_attention(admin, seeded):
    from roger_economic.db import models, session

    with session(seeded) as sess:  # a new agreement: no master data, never run
        sess.add(
            models.Agreement(
                id="agr_new",
                name="Aabenraa Nyt ApS",
                active=True,
                roger_company_id="cmp_9",
                roger_token_ref="env:R",
                economic_token_ref="env:E",
                invoice_journal=2,
                payment_journal=3,
                supplier_policy="create",
                closed_period_policy="quarantine",
                book_without_attachment=False,
                updated_at=datetime.now(UTC),
            )
        )
    html = admin.get(PREFIX + "/").text
    rows = re.findall(r'<tr class="(attention|fine)">(.*?)</tr>', html, re.S)
    names = [re.search(r">([^<]+)</a>", body).group(1) for _, body in rows]
    assert names == ["Jensen &amp; Søn &lt;Revision&gt;", "Hansen Tømrer ApS", "Aabenraa Nyt ApS"]
    jensen, hansen, new = (body for _, body in rows)
    assert "last run failed: load: e-conomic answered 500" in jensen and "no access to e-conomic" in jensen
    assert "1 bill(s) quarantined" in hansen and "1 mapping gap(s)" in hansen
    assert "no master data yet" in new and "never run" in new
    setup = admin.get(f"{PREFIX}/agreements/agr_new").text
    assert "Not known yet: no master data stored" in setup and "every category and payment method can be" not in setup
    assert re.search(r"\d\d-\d\d-\d{4} \d\d:\d\d CES?T", html)  # Copenhagen time, with the zone


def _new_agreement(sess, aid: str, name: str, company: str) -> None:
    from roger_economic.db import models

    sess.add(
        models.Agreement(
            id=aid,
            name=name,
            active=True,
            roger_company_id=company,
            roger_token_ref="env:R",
            economic_token_ref="env:E",
            invoice_journal=2,
            payment_journal=3,
            supplier_policy="create",
            closed_period_policy="quarantine",
            book_without_attachment=False,
            updated_at=datetime.now(UTC),
        )
    )


def test_a_held_entry_needs_attention_with_its_reason(admin, seeded):
    """A payment held back because e-conomic rejected its invoice is not booked: it counts as failed, sorts the
    agreement with those that need attention, and the overview says why."""
    from roger_economic.db import models, session

    reason = "payment of bill bill_H1 is held back: e-conomic rejected its invoice: account 9999 does not exist"
    with session(seeded) as sess:
        _new_agreement(sess, "agr_held", "Zealand Held ApS", "cmp_8")  # alphabetically last
        _new_agreement(sess, "agr_quiet", "Aabenraa Nyt ApS", "cmp_9")  # never run, nothing held
        sess.flush()
        sess.add(
            models.Posting(
                agreement_id="agr_held",
                bill_id="bill_H1",
                bill_version=1,
                entry_kind="payment",
                idempotency_key="k-h1-pay",
                status="held",
                journal_number=3,
                accounting_year="2026",
                payload={},
                payload_hash="h",
                error=reason,
                created_at=datetime.now(UTC),
            )
        )
    html = admin.get(PREFIX + "/").text
    rows = re.findall(r'<tr class="(attention|fine)">(.*?)</tr>', html, re.S)
    names = [re.search(r">([^<]+)</a>", body).group(1) for _, body in rows]
    assert names.index("Zealand Held ApS") < names.index("Aabenraa Nyt ApS")
    held = rows[names.index("Zealand Held ApS")][1]
    assert f"1 entr(y/ies) held back (not posted): {reason}" in held
    assert re.findall(r'<td class="num">(\d+)</td>', held)[:1] == ["0"] and '<td class="num">1</td>' in held


def test_the_overview_search_ignores_case_and_danish_letters(admin, seeded):
    """The agreement search folds like the bill log's: the same hits on SQLite and PostgreSQL."""
    from roger_economic.db import session

    with session(seeded) as sess:
        _new_agreement(sess, "agr_aero", "ÆRØ Å-Byg ApS", "cmp_7")

    def found(q: str) -> list[str]:
        html = admin.get(PREFIX + "/", params={"q": q}).text
        return sorted(re.findall(r'<a href="/roger-economic/agreements/([\w%]+)">', html))

    assert found("TØMRER") == found("tømrer") == found("Tømrer") == [AID]
    assert found("ærø å-byg") == found("ÆRØ Å-BYG") == ["agr_aero"]
    assert found("SØN <revision>") == [OTHER]
    assert found("AGR_AERO") == ["agr_aero"]
    assert found("50%") == [] and found("_") == sorted([AID, OTHER, "agr_aero"])  # no LIKE wildcards


def test_the_data_docs_link_survives_a_quiet_night(admin, seeded):
    from roger_economic.db import models, session

    now = datetime.now(UTC)
    with session(seeded) as sess:
        sess.add(
            models.RunReport(
                run_id="scheduled__busy",
                agreement_id=AID,
                phase="validate",
                outcome="ok",
                counts={"data_docs": "validations/booking_rules/busy/page.html"},
                finished_at=now - timedelta(days=1),
            )
        )
        sess.add(
            models.RunReport(
                run_id="scheduled__quiet",
                agreement_id=AID,
                phase="validate",
                outcome="ok",
                counts={"unchanged": True},
                finished_at=now,
            )
        )
        sess.get(models.AgreementStatus, AID).last_run_id = "scheduled__quiet"
    html = admin.get(PREFIX + "/").text
    assert f'href="{PREFIX}/data-docs/validations/booking_rules/busy/page.html"' in html


def test_the_chart_labels_entries_and_bills_with_dates(admin, seeded):
    html = admin.get(PREFIX + "/").text
    assert "entries booked" in html and "bills quarantined" in html
    chart = html[html.index("<svg") : html.index("</svg>")]
    assert "entries booked, " in chart and re.search(r'<text class="date"[^>]*>\d\d-\d\d</text>', chart)
    dates = html[html.index('class="chart-dates"') :]
    assert len(re.findall(r"\d\d-\d\d-\d{4} \d\d:\d\d CES?T", dates[:300])) == 2


# ------------------------------------------------------------------------------------------------ queries on both DBs


def test_bill_search_by_vendor_invoice_and_amount_ignores_case_and_danish_letters(airflow_app, seeded):
    from roger_economic_ui import queries

    from roger_economic.db import session

    _add_bill(
        seeded,
        "bill_AE",
        "booked",
        amount="1234.56",
        invoice_number="FAKT-Å17",
        **{"vendor.name": "ÆRØ ØLBRYGGERI ÅPS"},
    )
    _add_bill(seeded, "bill_other", "booked", amount="99.00", **{"vendor.name": "Aabenraa VVS"})

    def found(text: str) -> set[str]:
        with session(seeded) as sess:
            rows, total, _states = queries.bill_log(sess, AID, "", text)
        assert total == len(rows)
        return {r["bill_id"] for r in rows}

    for text in ("ærø", "Ærø ølbryggeri", "åps", "fakt-å17", "FAKT-Å17", "1234.56", "1234,56", "1.234,56", "bill_ae"):
        assert found(text) == {"bill_AE"}, text
    assert found("aabenraa") == {"bill_other"}
    assert found("zz_nothing") == set() and found("100%") == set()
    with session(seeded) as sess:
        assert queries.bill_log(sess, AID, "booked", "ØLBRYGGERI")[1] == 1
        assert queries.bill_log(sess, AID, "quarantined", "ølbryggeri")[1] == 0


def test_a_concurrent_save_loses_and_nothing_of_it_is_stored(airflow_app, seeded):
    from roger_economic_ui import queries

    from roger_economic.db import session

    with session(seeded) as sess:
        setup = queries.load_setup(sess, AID)
        version = queries.setup_version(setup.agreement)
    forms = [_setup_form(version=version, cat_account__cat_marketing=account) for account in ("2200", "3990")]
    with session(seeded) as sess:
        setup = queries.load_setup(sess, AID)
        parsed, _kept = queries.parse_with_kept(setup, forms[0])
        queries.save_setup(sess, setup, parsed, actor="first", version=version)
    with session(seeded) as sess:  # the second one checked the version before the first committed
        setup = queries.load_setup(sess, AID)
        parsed, _kept = queries.parse_with_kept(setup, forms[1])
        with pytest.raises(queries.SetupChanged) as refused:
            queries.save_setup(sess, setup, parsed, actor="second", version=version)
    assert [c["actor"] for c in refused.value.changes] == ["first"]
    assert refused.value.changes[0]["after"] == {"category cat_marketing": "2200"}
    assert _mappings(seeded)[0]["cat_marketing"] == (2200, None)
    with session(seeded) as sess:
        assert [(a.actor, a.action) for a in queries.audit_log(sess, AID)] == [("first", "save_setup")]


# ------------------------------------------------------------------------------------------------ safe to open


def _mapping_form_page(html: str) -> str:
    return html.replace("\n", "")


def test_every_page_carries_the_security_headers(admin, anon, seeded, monkeypatch, tmp_path):
    from roger_economic_ui import app as ui

    monkeypatch.setattr(ui, "DATA_DOCS", tmp_path)
    (tmp_path / "index.html").write_text("<html><head></head><body>docs</body></html>", encoding="utf-8")
    pages = (
        "/",
        f"/agreements/{AID}",
        f"/agreements/{AID}/bills",
        "/agreements/nope",
        "/?page=abc",
        "/data-docs/index.html",
    )
    responses = {path: admin.get(PREFIX + path, headers=HTML) for path in pages}
    responses["login redirect"] = anon.get(PREFIX + "/", headers=HTML)
    responses["refused post"] = admin.post(
        f"{PREFIX}/agreements/{AID}/bills/resync-quarantined", headers={"Origin": "http://localhost:9"}
    )
    for what, res in responses.items():
        csp = res.headers.get("content-security-policy", "")
        assert "frame-ancestors 'self'" in csp and "default-src 'none'" in csp, (what, csp)
        assert "script-src 'none'" in csp and "'unsafe-eval'" not in csp, (what, csp)  # no script may run
        assert res.headers.get("x-content-type-options") == "nosniff", what
        assert res.headers.get("referrer-policy") == "same-origin", what
        assert res.headers.get("cache-control") == "no-store", what
    docs_csp = responses["/data-docs/index.html"].headers["content-security-policy"]
    assert docs_csp.startswith("sandbox;") and "allow-" not in docs_csp  # no scripts, opaque origin
    assert "sandbox" not in responses["/"].headers["content-security-policy"]


def test_posts_without_the_token_or_from_another_site_change_nothing(airflow_app, tokens, seeded):
    from fastapi.testclient import TestClient

    before, states = _mappings(seeded), _bill_states(seeded)
    wipe = {k: "" for k in _setup_form()}  # a forged form that unmaps everything
    cookie = {"_token": tokens["admin"]}
    cases = {
        "no token": ({"Origin": SITE}, wipe),
        "another user's token": ({"Origin": SITE}, {**wipe, "csrf_token": _csrf(tokens["viewer"])}),
        "the same user's other login's token": ({"Origin": SITE}, {**wipe, "csrf_token": _csrf(_new_login("admin"))}),
        "cross-site": ({"Origin": "http://localhost:8793"}, {**wipe, "csrf_token": _csrf(tokens["admin"])}),
        "same site, other port": ({"Origin": "http://testserver:8793"}, {**wipe, "csrf_token": _csrf(tokens["admin"])}),
        "sandboxed page": ({"Origin": "null"}, {**wipe, "csrf_token": _csrf(tokens["admin"])}),
        "other site by referer": ({"Referer": "http://127.0.0.2/x"}, {**wipe, "csrf_token": _csrf(tokens["admin"])}),
        "neither origin nor referer": ({}, {**wipe, "csrf_token": _csrf(tokens["admin"])}),
    }
    with TestClient(airflow_app, follow_redirects=False, cookies=cookie) as client:
        for what, (headers, form) in cases.items():
            for path in (
                f"/agreements/{AID}",
                f"/agreements/{AID}/bills/resync-quarantined",
                f"/agreements/{AID}/bills/bill_Q1/resync",
                f"/agreements/{AID}/refresh",
            ):
                res = client.post(PREFIX + path, data=form, headers={**headers, **HTML})
                assert res.status_code == 403, (what, path, res.status_code)
                assert "Nothing was changed" in res.text or "nothing was" in res.text, (what, path)
        assert _mappings(seeded) == before and _bill_states(seeded) == states
        # the same form from the plugin's own page, with the session's token, is taken
        ok = client.post(
            f"{PREFIX}/agreements/{AID}/bills/bill_Q1/resync",
            data={"csrf_token": _csrf(tokens["admin"])},
            headers={"Referer": f"{SITE}{PREFIX}/agreements/{AID}/bills"},
        )
        assert ok.status_code == 303, ok.text
    assert _bill_states(seeded)["bill_Q1"] == "new"


def test_pages_carry_the_token_in_every_form(admin, tokens, seeded):
    import re

    token = _csrf(tokens["admin"])
    for path in (f"/agreements/{AID}", f"/agreements/{AID}/bills"):
        html = admin.get(PREFIX + path).text
        forms = re.findall(r"<form\b[^>]*method=\"post\".*?</form>", html, re.DOTALL)
        assert forms, path
        for form in forms:
            assert f'<input type="hidden" name="csrf_token" value="{token}">' in form, (path, form[:200])


def test_a_viewer_is_offered_no_action(viewer, admin, seeded):
    setup = viewer.get(f"{PREFIX}/agreements/{AID}").text
    assert ">Save</button>" not in setup and "Refresh master data" not in setup and "Read only" in setup
    bills = viewer.get(f"{PREFIX}/agreements/{AID}/bills").text
    assert "Re-sync" not in bills.replace("Re-sync sets", "") and "bill_Q1" in bills
    assert ">Save</button>" in admin.get(f"{PREFIX}/agreements/{AID}").text
    assert "Re-sync all" in admin.get(f"{PREFIX}/agreements/{AID}/bills").text


def test_a_refused_save_keeps_what_was_typed_and_says_why(airflow_app, tokens, viewer, seeded):
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    typed = _setup_form(cat_account__cat_marketing="2200", supplier_group="7")
    # a viewer (the role changed while the page was open): 403, the form as typed, the reason
    refused = viewer.post(f"{PREFIX}/agreements/{AID}", data=typed, headers=HTML)
    assert refused.status_code == 403
    page = _mapping_form_page(refused.text)
    assert "Not saved" in page and "may not do this" in page and "roger_bills_to_economic" in page
    assert 'value="2200" selected' in page and 'name="supplier_group" value="7"' in page
    # an expired session: 401, the form as typed, its token kept, and a way to log in again
    expired = get_auth_manager().generate_jwt(
        SimpleAuthManagerUser(username="admin", role="admin"), expiration_time_in_seconds=-60
    )
    with TestClient(
        airflow_app, follow_redirects=False, cookies={"_token": expired}, headers={"Origin": SITE}
    ) as client:
        res = client.post(f"{PREFIX}/agreements/{AID}", data={**typed, "csrf_token": _csrf(expired)}, headers=HTML)
    assert res.status_code == 401
    page = _mapping_form_page(res.text)
    assert "not logged in" in page and "/auth/login" in page and 'value="2200" selected' in page
    assert ">Save</button>" in page  # to send it again once logged in
    assert f'name="csrf_token" value="{_csrf(expired)}"' in page
    assert "cat_marketing" not in _mappings(seeded)[0]
    # logged in again: a new session, so the kept form's token (the ended session's) is refused once, the form
    # shown again as typed with the new session's token, and sent again it is taken
    login = _new_login("admin")
    with TestClient(airflow_app, follow_redirects=False, cookies={"_token": login}, headers={"Origin": SITE}) as client:
        stale = client.post(f"{PREFIX}/agreements/{AID}", data={**typed, "csrf_token": _csrf(expired)}, headers=HTML)
        assert stale.status_code == 403
        page = _mapping_form_page(stale.text)
        assert "another login" in page and 'value="2200" selected' in page
        assert "cat_marketing" not in _mappings(seeded)[0]
        shown = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page).group(1)
        assert shown == _csrf(login) != _csrf(expired)
        again = client.post(f"{PREFIX}/agreements/{AID}", data={**typed, "csrf_token": shown})
    assert again.status_code == 303, again.text
    assert _mappings(seeded)[0]["cat_marketing"] == (2200, None)


def test_bad_query_values_answer_a_page_not_json(admin, seeded):
    for path in ("/?page=abc", f"/agreements/{AID}/bills?page=x%3Cb%3E"):
        res = admin.get(PREFIX + path, headers=HTML)
        assert res.status_code == 400 and res.headers["content-type"].startswith("text/html"), path
        assert "page must be a whole number" in res.text and "<b>" not in res.text and "x<" not in res.text


def test_messages_shown_are_only_the_servers(admin, seeded):
    forged = admin.get(PREFIX + "/", params={"msg": "Your account is locked: call +45 1234"}).text
    assert "account is locked" not in forged
    forged_sig = admin.get(PREFIX + "/", params={"msg": "Saved. Pay now", "sig": "0" * 64}).text
    assert "Pay now" not in forged_sig
    res = admin.post(f"{PREFIX}/agreements/{AID}/bills/resync-quarantined", data={"confirm": "yes", "expected": "1"})
    assert "1 quarantined bill(s) set back to new" in admin.get(res.headers["location"]).text


def test_data_docs_are_served_without_remote_scripts_or_styles(admin, seeded, monkeypatch, tmp_path):
    import re

    from roger_economic_ui import app as ui

    monkeypatch.setattr(ui, "DATA_DOCS", tmp_path)
    (tmp_path / "page.html").write_text(
        '<html><head><link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/b.css"/>'
        '<link rel="shortcut icon" href="static/images/favicon.ico"/>'
        '<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script><script>init()</script>'
        "<style>.logo{background: url('https://assets.example/logo-dark.png') 0 0}</style></head>"
        '<body><img\n src="https://assets.example/logo-long.png?d=1"><td>INV-1<img src=x onerror="window.__pwned=1">'
        '</td><a href="https://docs.example/guide">guide</a></body></html>',
        encoding="utf-8",
    )
    res = admin.get(f"{PREFIX}/data-docs/page.html")
    assert res.status_code == 200 and "INV-1" in res.text
    assert "<script" not in res.text and "init()" not in res.text
    assert re.findall(r"https://[^\"']*", res.text) == ["https://docs.example/guide"]  # a link loads nothing
    assert "favicon.ico" in res.text and "<style>" in res.text  # local parts stay; a local stylesheet instead
    assert res.headers["content-security-policy"].startswith("sandbox;")  # the onerror cannot run


# ------------------------------------------------------------------------------------------------ suggested mappings


def _suggestion_notes(html: str) -> dict[str, str]:
    """Form field → the text of its "suggested" note, as the setup page shows it."""
    notes = {}
    for name, note in re.findall(r'<select name="((?:cat|pm)_account__\w+)">.*?</select>(.*?)</td>', html, re.S):
        if "badge suggested" in note:
            notes[name] = " ".join(re.sub(r"<[^>]+>", " ", note).split())
    return notes


def test_setup_page_marks_suggestions_and_only_save_stores_them(admin, seeded, monkeypatch):
    from sqlalchemy import select

    from roger_economic import pipeline
    from roger_economic.db import models, session

    monkeypatch.setenv("ROGER_ECONOMIC_DATA_DOCS", "0")
    _store_mappings(seeded, {"cat_office": (2750, None)}, {"pm_bank": 5820})  # agr_0002 maps cat_software, pm_credit
    _add_bill(seeded, "bill_phone", "new", category_id="cat_phone", **{"amount": "500.00", "vat_amount": "100.00"})
    stored = _mappings(seeded)

    page = admin.get(f"{PREFIX}/agreements/{AID}").text
    notes = _suggestion_notes(page)
    assert "suggested mapping(s)" in page and "not stored, and no bill is booked on them" in page
    assert "2760 Software og abonnementer: used by 1 other agreement" in notes["cat_account__cat_software"]
    assert "2770 Telefon og internet: name like &#39;Telefon og internet&#39;" in notes["cat_account__cat_phone"]
    assert "5830 Betalingskort: debit card → 58xx (bank accounts)" in notes["pm_account__pm_debit"]
    assert "6600 Kreditkort: used by 1 other agreement" in notes["pm_account__pm_credit"]
    assert "cat_account__cat_office" not in notes and "pm_account__pm_bank" not in notes  # mapped: no suggestion
    assert "cat_account__cat_meals" not in notes  # nothing alike in the chart: nothing suggested
    form = _submitted(page)
    assert form["cat_account__cat_phone"] == "2770" and form["pm_account__pm_debit"] == "5830"  # preselected
    assert form["cat_account__cat_office"] == "2750" and form["cat_account__cat_meals"] == ""

    # shown is not stored, and the pipeline books nothing on it: the bill is quarantined as unmapped
    assert _mappings(seeded) == stored
    pipeline.validate([AID], "manual__before_save")
    with session(seeded) as sess:
        bill = sess.get(models.StagedBill, (AID, "bill_phone"))
        assert bill.state == "quarantined"
        rules = set(
            sess.scalars(
                select(models.Quarantine.rule).where(
                    models.Quarantine.agreement_id == AID,
                    models.Quarantine.bill_id == "bill_phone",
                    models.Quarantine.released_at.is_(None),
                )
            )
        )
    assert "category_mapped" in rules

    # a refused SAVE stores none of them either, and keeps them marked
    refused = admin.post(f"{PREFIX}/agreements/{AID}", data=dict(form, supplier_group=""))
    assert refused.status_code == 400 and "badge suggested" in refused.text
    assert _mappings(seeded) == stored

    # SAVE stores what the form shows; the suggestions are then mappings, no longer marked
    res = admin.post(f"{PREFIX}/agreements/{AID}", data=form)
    assert res.status_code == 303, res.text
    cats, methods = _mappings(seeded)
    assert cats["cat_phone"] == (2770, None) and cats["cat_software"] == (2760, None) and "cat_meals" not in cats
    assert methods == {"pm_bank": 5820, "pm_debit": 5830, "pm_credit": 6600, "pm_mobilepay": 5840}
    after = admin.get(f"{PREFIX}/agreements/{AID}").text
    assert "cat_account__cat_phone" not in _suggestion_notes(after)
    pipeline.validate([AID], "manual__after_save")  # the changed setup re-judges the quarantined bill
    with session(seeded) as sess:
        assert sess.get(models.StagedBill, (AID, "bill_phone")).state == "planned"


# ------------------------------------------------------------------------------------------------ bulk CSV import


def test_clients_are_imported_from_an_uploaded_csv_with_a_result_per_row(admin, viewer, seeded, monkeypatch):
    from airflow.models import Connection
    from airflow.utils.session import create_session

    from roger_economic.db import models, session

    monkeypatch.setenv("UI_ROGER_9", "sbx-roger-UI-SECRET")
    monkeypatch.setenv("UI_GRANT_9", "sbx-grant-UI-SECRET")
    with create_session() as airflow_session:  # a grant token stored as an Airflow connection
        if not airflow_session.query(Connection).filter_by(conn_id="ui_grant_12").first():
            airflow_session.add(Connection(conn_id="ui_grant_12", conn_type="generic", password="sbx-grant-UI-CONN"))
    csv_text = (
        "roger_company_id,roger_token_ref,economic_token_ref,name\n"
        "cmp_0009,env:UI_ROGER_9,env:UI_GRANT_9,Ny Klient <ApS>\n"
        "cmp_0001,env:UI_ROGER_9,env:ECONOMIC,Already a client\n"  # agr_0001's company and grant ref
        "cmp_0010,env:UI_ROGER_9,sbx-grant-UI-SECRET,Token pasted\n"
        "cmp_0011,env:UI_ROGER_9,conn:no_such_connection,Unknown connection\n"
        "cmp_0012,env:UI_ROGER_9,conn:ui_grant_12,From a connection\n"
    )
    assert 'href="/roger-economic/import"' in admin.get(f"{PREFIX}/").text
    form = admin.get(f"{PREFIX}/import").text
    assert 'enctype="multipart/form-data"' in form and 'name="csrf_token"' in form
    upload = {"file": ("clients.csv", csv_text.encode(), "text/csv")}
    res = admin.post(f"{PREFIX}/import", files=upload, data={"invoice_journal": "2", "payment_journal": "3"})
    assert res.status_code == 200, res.text
    rows = re.findall(r'<tr class="import-([\w-]+)">\s*<td class="num">(\d+)</td>', res.text)
    assert rows == [("created", "2"), ("refused", "3"), ("refused", "4"), ("refused", "5"), ("created", "6")]
    assert "2 of 5 row(s) created" in res.text
    assert "Roger company cmp_0001 is already agreement" in res.text
    assert "conn:no_such_connection: connection has no password" in res.text
    assert "UI-SECRET" not in res.text and "UI-CONN" not in res.text
    with session(seeded) as sess:
        created = sess.get(models.Agreement, "agr_cmp_0009")
        assert created.name == "Ny Klient <ApS>" and created.invoice_journal == 2 and created.active
        assert sess.get(models.Agreement, "agr_cmp_0010") is None
    assert "import_csv" in admin.get(f"{PREFIX}/agreements/agr_cmp_0009").text  # audited
    # a viewer may not add clients; a bad header refuses the file as a whole
    assert viewer.post(f"{PREFIX}/import", files=upload).status_code == 403
    bad = admin.post(f"{PREFIX}/import", files={"file": ("x.csv", b"company,roger_token_ref\n", "text/csv")})
    assert bad.status_code == 400 and "Nothing imported" in bad.text and "unknown key &#39;company&#39;" in bad.text
