"""Adding a client in a real browser, to its first booked bill (issue 18, point 7).

Airflow's login, the Roger step, e-conomic's approval page ("Tilføj app"), the master data fetched while the
progress page follows it, the prerequisites and the suggested mappings on the setup page, SAVE, the first bills
run (the DAG, in-process against the same databases, as ``tests/integration`` run it) and the bill log.

A real ``airflow api-server`` (``test_ui_browser.ApiServer``), both sandboxes (the e-conomic one serving the
approval page as e-conomic's ``secure.e-conomic.com`` does), Debian's chromium through Playwright.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.helpers import economic_state, run_dags, staged_states
from tests.ui.test_ui_browser import BROWSER_ARGS, PASSWORD, PREFIX, ApiServer

from sandboxes import world

pytestmark = pytest.mark.slow

os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", "8CLkF5nYYw5ANbqMXCr6JsXY0FyqcZW4m3CSbPTDSes=")
CLIENT = 2  # Roger cmp_0002, e-conomic agreement 700002
AID = f"agr_{world.agreement_number(CLIENT)}"
WINDOW = {"from_date": "2026-10-01", "to_date": "2026-11-26"}  # the sandbox's bills


@pytest.fixture()
def server(sandboxes, project_db: str, airflow_db: Path, tmp_path: Path, monkeypatch) -> Iterator[ApiServer]:
    """The firm's app connection as an operator defines it, then the api-server (which reads the environment)."""
    _, economic = sandboxes
    economic.control("POST", "approval", {"agreement": world.agreement_number(CLIENT)})
    monkeypatch.setenv("ECONOMIC_APPROVAL_BASE_URL", economic.base_url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_ECONOMIC_DEFAULT",
        json.dumps(
            {
                "conn_type": "economic",
                "host": economic.base_url,
                "password": world.DEFAULT_APP_SECRET,
                "extra": {"app_public_token": world.DEFAULT_APP_PUBLIC_TOKEN},
            }
        ),
    )
    api = ApiServer(tmp_path)
    try:
        yield api
    finally:
        api.stop()
        from airflow.models.connection import Connection
        from airflow.utils.session import create_session

        with create_session() as sess:
            added = [f"{kind}_agr_{world.agreement_number(i)}" for kind in ("economic", "roger") for i in (1, 2, 3)]
            sess.query(Connection).filter(
                Connection.conn_id.in_(added) | Connection.conn_id.like("roger_economic_onboarding_%")
            ).delete(synchronize_session=False)


def _grant() -> str:
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as sess:
        return sess.query(Connection).filter(Connection.conn_id == f"economic_{AID}").one().password


def _vouchers_for(economic, bill_id: str) -> list[tuple[int, int, str]]:
    """(journal, voucher number, entry type) of each live voucher entry e-conomic holds for the bill."""
    found = []
    for voucher in economic_state(economic, CLIENT)["vouchers"]:
        if voucher["status"] == "deleted":
            continue
        for entry in voucher["entries"]:
            if entry.get("status") != "deleted" and f"[{bill_id}]" in entry.get("text", ""):
                found.append((int(voucher["journal"]), int(voucher["voucherNumber"]), entry["entryType"]))
    return found


def _posted(bill_id: str) -> list[tuple[str, int, int]]:
    from sqlalchemy import select

    from roger_economic.db import models, session

    P = models.Posting
    with session() as sess:
        rows = sess.execute(
            select(P.entry_kind, P.journal_number, P.voucher_number).where(
                P.agreement_id == AID, P.bill_id == bill_id, P.status == "posted"
            )
        )
        return [tuple(r) for r in rows]


def _log_in(page, base: str) -> None:
    page.goto(f"{base}{PREFIX}/")  # not logged in: Airflow's login first
    page.wait_for_url(re.compile(r"/auth/login\?next="))
    page.locator("input[name=username]").fill("admin")
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}{PREFIX}/")


def test_add_a_client_through_approval_and_fetched_data_to_save_and_a_first_booked_bill(
    chromium, server, sandboxes, tmp_path, monkeypatch
):
    """Everything an accountant does for a new client, in the browser, and the first night's booking."""
    from playwright.sync_api import sync_playwright

    from roger_economic.db import models, session

    _, economic = sandboxes
    monkeypatch.setenv("ROGER_ECONOMIC_DATA_DOCS", "0")  # the bills run below: no Data Docs pages (time)
    server.wait_ready()
    base = server.url
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
            page.set_default_timeout(20_000)
            visited: list[str] = []
            page.on("request", lambda r: visited.append(r.url) if r.is_navigation_request() else None)
            _log_in(page, base)
            page.get_by_role("link", name="Add a client").click()  # "Add client" in the header
            page.wait_for_url(f"{base}{PREFIX}/clients/new")
            page.get_by_role("link", name="One company").click()
            page.wait_for_url(f"{base}{PREFIX}/clients/new?mode=one")

            # step 1: Roger, checked live
            page.locator("input[name=company_id]").fill(world.company_id(CLIENT))
            page.locator("input[name=roger_token]").fill(world.roger_token(CLIENT))
            page.get_by_role("button", name="Check with Roger").click()
            page.locator(".company-name").wait_for()
            assert page.locator(".company-name").inner_text().strip()
            page.screenshot(path=str(shots / "01-roger-checked.png"))

            # step 2: CONNECT E-CONOMIC → e-conomic's approval page → "Tilføj app"
            page.get_by_role("link", name="CONNECT E-CONOMIC").click()
            page.wait_for_url(re.compile(r"/secure/api1/requestaccess\.aspx\?appPublicToken="))
            assert page.locator(".agreement-number").inner_text() == str(world.agreement_number(CLIENT))
            assert world.APP_NAME in page.locator(".app-name").inner_text()
            page.screenshot(path=str(shots / "02-approval.png"))
            page.get_by_role("button", name="Tilføj app").click()

            # step 3: back through the callback, the master data fetched while the progress page follows it (a
            # page that looks again by itself, no script), then on the new agreement's setup page at a clean URL
            page.wait_for_url(re.compile(rf"{re.escape(base)}{PREFIX}/agreements/{AID}\?msg="), timeout=60_000)
            assert any(f"/agreements/{AID}/progress?run=ui_fetch__" in url for url in visited), visited
            assert "token=" not in page.url
            page.locator("h1", has_text="Setup of").wait_for()
            msg = page.locator(".msg").inner_text()
            assert "Connected, and the master data fetched" in msg and "Roger categories" in msg, msg

            # the prerequisites, the fetched data, the suggested mappings
            assert "✓" in page.locator("#prereq-api").inner_text()
            assert "✓" in page.locator("#prereq-scanning").inner_text()  # the sandbox's 700002 has Indscanning
            assert page.get_by_text("No master data stored").count() == 0
            connected = page.locator("#connected-to").inner_text()  # /self: agreement, company, base currency
            assert str(world.agreement_number(CLIENT)) in connected and "base currency DKK" in connected
            assert re.search(r"Master data from \d\d-\d\d-\d{4}", page.locator("p.muted").first.inner_text())
            assert page.locator("select[name^=cat_account__]").count() >= 5  # Roger's categories, to map
            assert page.locator("select[name=invoice_journal] option").count() > 1  # e-conomic's journals
            suggested = page.locator("#suggested").inner_text()
            assert "suggested mapping(s)" in suggested and "not stored" in suggested
            notes = page.locator(".suggestion")
            assert notes.count() >= 3 and "suggested" in notes.first.inner_text()
            with session() as sess:
                assert not sess.query(models.CategoryMapping).filter_by(agreement_id=AID).count()  # not yet
            page.screenshot(path=str(shots / "03-setup-fetched-suggested.png"), full_page=True)

            # the accountant's choices on top of the suggestions, then SAVE
            page.locator("select[name=supplier_policy]").select_option("create")
            page.locator("input[name=supplier_group]").fill("1")
            page.locator("input[name=payment_terms]").fill("1")
            page.get_by_role("button", name="Save").click()
            page.wait_for_url(re.compile(rf"{PREFIX}/agreements/{AID}\?msg=Saved"))
            assert page.locator(".errors").count() == 0
            assert page.locator("#suggested").count() == 0  # stored now: no longer marked as suggestions
            assert "admin" in page.locator("tr.audit-save_setup").inner_text()
            with session() as sess:
                assert sess.query(models.CategoryMapping).filter_by(agreement_id=AID).count() >= 3
            page.screenshot(path=str(shots / "04-saved.png"), full_page=True)

            # the first night: the bills DAG, in-process against the same databases (no scheduler in tests)
            run = run_dags({**WINDOW, "agreements": [AID]}, master_data=False)
            assert run.state == "success", run.state
            booked = [b for b, state in staged_states(AID).items() if state == "booked"]
            assert booked, staged_states(AID)
            bill_id = sorted(booked)[0]
            posted = _posted(bill_id)
            held = _vouchers_for(economic, bill_id)
            invoices = [v for v in held if v[2] == "supplierInvoice"]
            assert len(invoices) == 1, held  # exactly one voucher for the bill's invoice, nothing twice
            assert sorted((j, n) for _, j, n in posted) == sorted((j, n) for j, n, _ in held), (posted, held)

            # the bill log shows it booked, with the voucher e-conomic holds
            page.get_by_role("link", name="Bill log").click()
            page.wait_for_url(f"{base}{PREFIX}/agreements/{AID}/bills")
            page.locator("input[type=search][name=q]").fill(bill_id)
            page.get_by_role("button", name="Filter").click()
            row = page.locator(f"tr#bill-{bill_id}")
            assert row.locator("td").nth(3).locator(".badge").inner_text().strip() == "booked"
            for kind, journal, voucher in posted:
                assert re.search(
                    rf"{kind}\s*·\s*posted\s*·\s*journal {journal}\s*·\s*\S+\s*·\s*{voucher}\b", row.inner_text()
                )
            page.screenshot(path=str(shots / "05-bill-log-booked.png"), full_page=True)
        finally:
            browser.close()

    with session() as sess:
        row = sess.get(models.Agreement, AID)
        assert (row.roger_company_id, row.economic_agreement_number) == (
            world.company_id(CLIENT),
            world.agreement_number(CLIENT),
        )
    grant = _grant()
    assert grant.startswith("sbx-grant-0002-")  # the fresh grant the approval page issued
    log = server.log.read_text(errors="replace")
    assert grant not in log and world.roger_token(CLIENT) not in log


def test_a_firm_connects_two_clients_in_a_row_without_typing_between_the_approvals(
    chromium, server, sandboxes, tmp_path
):
    """Several companies: both Roger companies listed first (checked live, names shown), then approval after
    approval; after the first, "Connect another client" is one click straight to e-conomic's approval page."""
    from playwright.sync_api import sync_playwright

    from roger_economic.db import models, session

    _, economic = sandboxes
    first, second = 1, 3
    server.wait_ready()
    base = server.url
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
            page.set_default_timeout(20_000)
            visited: list[str] = []
            page.on("request", lambda r: visited.append(r.url) if r.is_navigation_request() else None)
            _log_in(page, base)
            page.get_by_role("link", name="Add a client").click()
            page.get_by_role("link", name="Several companies (accountancy firm)").click()
            page.wait_for_url(f"{base}{PREFIX}/clients/new?mode=several")
            for client in (first, second):
                page.locator("input[name=company_id]").fill(world.company_id(client))
                page.locator("input[name=roger_token]").fill(world.roger_token(client))
                page.get_by_role("button", name="Check with Roger and add to the list").click()
                page.locator("#added").wait_for()
            rows = page.locator("#queue tbody tr")
            assert rows.count() == 2
            assert [rows.nth(i).locator("td").first.inner_text() for i in (0, 1)] == [
                world.company_id(first),
                world.company_id(second),
            ]
            assert all(rows.nth(i).locator(".company-name").inner_text().strip() for i in (0, 1))  # Roger's names

            economic.control("POST", "approval", {"agreement": world.agreement_number(first)})
            page.get_by_role("link", name="CONNECT E-CONOMIC").click()
            for client in (first, second):
                aid = f"agr_{world.agreement_number(client)}"
                page.wait_for_url(re.compile(r"/secure/api1/requestaccess\.aspx\?appPublicToken="))
                assert page.locator(".agreement-number").inner_text() == str(world.agreement_number(client))
                page.get_by_role("button", name="Tilføj app").click()
                page.wait_for_url(re.compile(rf"{re.escape(base)}{PREFIX}/agreements/{aid}\?msg="), timeout=60_000)
                page.locator("h1", has_text="Setup of").wait_for()
                assert "Connected, and the master data fetched" in page.locator(".msg").inner_text()
                if client == second:
                    break
                assert "Next:" in page.locator(".msg").inner_text()
                # the accountant opens the next client's agreement in e-conomic (the sandbox has no login)
                economic.control("POST", "approval", {"agreement": world.agreement_number(second)})
                visited.clear()
                page.get_by_role("link", name="Connect another client").click()
                page.wait_for_url(re.compile(r"/secure/api1/requestaccess\.aspx"))
                paths = [url.split("?")[0].removeprefix(base) for url in visited]
                assert paths == [f"{PREFIX}/clients/next", f"{economic.base_url}/secure/api1/requestaccess.aspx"], (
                    visited
                )
            another = page.locator("#connect-another")
            assert another.get_attribute("href") == f"{PREFIX}/clients/new"  # the list is done
        finally:
            browser.close()

    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    grants = {}
    with session() as sess, create_session() as airflow:
        for client in (first, second):
            aid = f"agr_{world.agreement_number(client)}"
            row = sess.get(models.Agreement, aid)
            assert (row.roger_company_id, row.economic_token_ref) == (world.company_id(client), f"conn:economic_{aid}")
            grants[client] = airflow.query(Connection).filter(Connection.conn_id == f"economic_{aid}").one().password
            assert grants[client].startswith(f"sbx-grant-000{client}-")  # the grant its own approval issued
        assert not airflow.query(Connection).filter(Connection.conn_id.like("roger_economic_onboarding_%")).count()
    log = server.log.read_text(errors="replace")
    assert not any(grant in log for grant in grants.values())
