"""Adding a client in a real browser: Airflow's login, the Roger step, e-conomic's approval page, the setup page.

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
from tests.ui.test_ui_browser import BROWSER_ARGS, PASSWORD, PREFIX, ApiServer

from sandboxes import world

pytestmark = pytest.mark.slow

os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", "8CLkF5nYYw5ANbqMXCr6JsXY0FyqcZW4m3CSbPTDSes=")
CLIENT = 2  # Roger cmp_0002, e-conomic agreement 700002
AID = f"agr_{world.agreement_number(CLIENT)}"


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
            sess.query(Connection).filter(Connection.conn_id.in_([f"economic_{AID}", f"roger_{AID}"])).delete(
                synchronize_session=False
            )


def _grant() -> str:
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as sess:
        return sess.query(Connection).filter(Connection.conn_id == f"economic_{AID}").one().password


def test_add_a_client_through_e_conomics_approval_to_its_setup_page(chromium, server, sandboxes, tmp_path):
    from playwright.sync_api import sync_playwright

    from roger_economic.db import models, session

    server.wait_ready()
    base = server.url
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
            page.set_default_timeout(20_000)
            page.goto(f"{base}{PREFIX}/clients/new")  # not logged in: Airflow's login first
            page.wait_for_url(re.compile(r"/auth/login\?next="))
            page.locator("input[name=username]").fill("admin")
            page.locator("input[name=password]").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{base}{PREFIX}/clients/new")

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

            # step 3: back through the callback, on the new agreement's setup page at a clean URL
            page.wait_for_url(re.compile(rf"{re.escape(base)}{PREFIX}/agreements/{AID}\?msg="))
            assert "token=" not in page.url
            page.locator("h1", has_text="Setup of").wait_for()
            assert "Connected." in page.locator(".msg").inner_text()
            assert "✓" in page.locator("#prereq-api").inner_text()
            page.screenshot(path=str(shots / "03-setup.png"), full_page=True)
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
