"""The "Roger → e-conomic" pages are safe to open: tried as an attacker would, in Chromium, against a real api-server.

- Script payloads in every Roger text field (vendor name, invoice number,
  description, currency, category and payment-method names), put there through
  the Roger sandbox, run through the real pipeline with Great Expectations Data
  Docs: no page the plugin serves runs any of them, and no request leaves the
  api-server's own 127.0.0.1 origin.
- Another site's page that auto-submits a form to the plugin (cross-site from
  ``localhost``, same-site from another port of 127.0.0.1) changes nothing and
  gets a 403 page.
- The CSRF token belongs to one login session: a new login gets a new one, and a
  token read from another login of the same user is refused (the form kept).
- A viewer is offered no action; a save refused because the session ended or
  changed keeps what was typed and says why; ``?page=abc`` answers an HTML 400;
  ``?msg=`` shows no text the server did not write.

The api-server, login and browser are those of ``test_ui_browser.py``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from tests.ui.test_ui_browser import AID, BROWSER_ARGS, PASSWORD, PREFIX, ROOT, VIEWER_PASSWORD, api_server

pytestmark = pytest.mark.slow
__all__ = ["api_server"]  # the fixture, used by the tests below

COMPANY = "cmp_0003"  # agr_0003's Roger company (config/agreements.example.yaml)
NEW_ACCOUNT = "2200"


# ------------------------------------------------------------------------------------------------ helpers


class OtherSite:
    """A small web server on another port of 127.0.0.1: serves fixed pages and records every request it gets."""

    def __init__(self, pages: dict[str, str] | None = None) -> None:
        self.pages = pages or {}
        self.hits: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.hits.append(self.path)
                body = site.pages.get(urlsplit(self.path).path, "").encode()
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def other_site() -> Iterator[OtherSite]:
    site = OtherSite()
    try:
        yield site
    finally:
        site.close()


def payload(tag: str, marker: str = "") -> str:
    """Markup that, if it ever ran, sets ``window.__pwned`` and calls the marker site.

    JavaScript strings in backticks: the pipeline's messages quote values with ``repr``, which escapes ``'``.
    """
    call = f"fetch(`{marker}/{tag}`)" if marker else "0"
    return (
        f'<img src=x onerror="window.__pwned=`{tag}`;{call}">'
        f'<script>window.__pwned=`{tag}`;{call}</script><svg onload="window.__pwned=`{tag}`"></svg>'
    )


def login(page, base: str, user: str, password: str) -> None:
    page.goto(f"{base}/auth/login?next={base}{PREFIX}/")
    page.locator("input[name=username]").fill(user)
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}{PREFIX}/")


CSRF = "csrf_token"  # the hidden field of every form (security.CSRF_FIELD)


def csrf_of(page) -> str:
    """The CSRF token the page's setup form carries (all its forms carry the same)."""
    return page.locator(f"input[name={CSRF}]").first.input_value()


def _supplier_group() -> int | None:
    from roger_economic.db import models, session

    with session() as sess:
        return sess.get(models.Agreement, AID).supplier_group


def _mappings() -> tuple[dict[str, int], dict[str, int]]:
    from roger_economic.db import models, session

    with session() as sess:
        cats = dict(
            sess.execute(
                select(models.CategoryMapping.category_id, models.CategoryMapping.account_number).where(
                    models.CategoryMapping.agreement_id == AID
                )
            ).all()
        )
        methods = dict(
            sess.execute(
                select(models.PaymentMethodMapping.method_id, models.PaymentMethodMapping.account_number).where(
                    models.PaymentMethodMapping.agreement_id == AID
                )
            ).all()
        )
    return cats, methods


def _states() -> dict[str, str]:
    from roger_economic.db import models, session

    with session() as sess:
        return dict(
            sess.execute(
                select(models.StagedBill.bill_id, models.StagedBill.state).where(models.StagedBill.agreement_id == AID)
            ).all()
        )


def _first_run(ep, run: str, steps: tuple[str, ...]) -> dict[str, dict]:
    from roger_economic import pipeline

    calls = {
        "refresh": lambda: pipeline.refresh_master_data([AID], ep, run),
        "extract": lambda: pipeline.extract([AID], pipeline.Window(None, None), ep, run),
        "validate": lambda: pipeline.validate([AID], run),
        "load": lambda: pipeline.load([AID], ep, run),
    }
    return {step: calls[step]()[AID] for step in steps}


# ------------------------------------------------------------------------------------------------ the tests


@pytest.mark.parametrize("project_db", ["sqlite", "postgres"], indirect=True)
def test_no_script_from_roger_data_runs_on_any_page(
    chromium, api_server, project_db, sandboxes, other_site, monkeypatch
):
    from playwright.sync_api import sync_playwright

    from roger_economic import report
    from roger_economic.config import load_file
    from roger_economic_airflow.runtime import endpoints

    roger, _economic = sandboxes
    marker = f"http://localhost:{other_site.port}/pwned"
    bills = [b for b in roger.control("GET", f"bills?company_id={COMPANY}")["data"] if not b["deleted"]]
    first, second, third = bills[0], bills[1], bills[2]
    roger.control(
        "POST",
        "bills/update",
        {
            "company_id": COMPANY,
            "bill_id": first["id"],
            "changes": {
                "vendor": {"name": payload("vendor", marker)},
                "invoice_number": payload("invoice", marker),
                "description": payload("description", marker),
            },
        },
    )
    roger.control(
        "POST",
        "bills/update",
        {"company_id": COMPANY, "bill_id": second["id"], "changes": {"currency": payload("currency", marker)}},
    )
    roger.control(
        "POST",
        "bills/update",
        {
            "company_id": COMPANY,
            "bill_id": third["id"],
            "changes": {"invoice_number": payload("invoice2", marker)[:30]},
        },
    )
    roger.control(
        "POST",
        "names",
        {
            "company_id": COMPANY,
            "categories": {first["category_id"] or "cat_office": payload("category", marker)},
            "payment_methods": {"pm_bank": payload("method", marker)},
        },
    )

    monkeypatch.setenv("ROGER_ECONOMIC_DATA_DOCS", "1")  # GX writes the values it reports into these pages
    load_file(ROOT / "config" / "agreements.example.yaml")
    results = _first_run(endpoints(), "xss__1", ("refresh", "extract", "validate", "load"))
    docs_page = results["validate"].get("data_docs")
    assert docs_page, results
    report.save(report.build("xss__1", [AID]))  # the run's report: the overview links its Data Docs page
    api_server.wait_ready()
    base = api_server.url

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            # the payloads are live: with nothing in the way, they run
            probe = browser.new_page()
            probe.set_content(f"<p>{payload('probe')}</p>")
            probe.wait_for_function("() => window.__pwned === `probe`")
            probe.close()

            context = browser.new_context()
            requests: list[str] = []
            context.on("request", lambda request: requests.append(request.url))
            page = context.new_page()
            page.set_default_timeout(20_000)
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            login(page, base, "admin", PASSWORD)

            visited: dict[str, str] = {}
            for path in (
                "/",
                f"/?q={payload('search')}",
                f"/agreements/{AID}",
                f"/agreements/{AID}/bills",
                f"/agreements/{AID}/bills?state=quarantined",
                f"/agreements/{AID}/bills?q=<b>x",
                f"/data-docs/{docs_page}",
                "/data-docs/index.html",
                "/data-docs/expectations/booking_rules.html",
            ):
                response = page.goto(f"{base}{PREFIX}{path}")
                assert response is not None and response.status == 200, (path, response and response.status)
                page.wait_for_load_state("load")
                assert page.evaluate("() => window.__pwned") is None, path
                visited[path] = page.locator("body").inner_text()
            # the data got there: shown as text on the plugin's pages, present in the Data Docs page
            bill_log = visited[f"/agreements/{AID}/bills"]
            for tag in ("vendor", "invoice", "currency"):
                assert f"window.__pwned=`{tag}`" in bill_log, tag
            assert "window.__pwned=`category`" in visited[f"/agreements/{AID}"]
            assert "window.__pwned=`method`" in visited[f"/agreements/{AID}"]
            docs_text = visited[f"/data-docs/{docs_page}"]
            assert "currency known to e-conomic" in docs_text  # readable without its CDN styles and scripts
            assert "window.__pwned=`currency`" in docs_text  # Roger's text shown as text
            # following the overview's own link to the Data Docs page
            page.goto(f"{base}{PREFIX}/")
            page.get_by_role("link", name=re.compile(r"^validation .*\(Data Docs\)$")).first.click()
            page.wait_for_url(re.compile(r"/data-docs/validations/"))
            page.wait_for_load_state("load")
            assert page.evaluate("() => window.__pwned") is None
            context.close()
        finally:
            browser.close()
    assert not dialogs
    assert other_site.hits == []  # no payload called out
    own = f"{base}/"
    outside = [url for url in requests if not url.startswith(own) and not url.startswith(("data:", "about:"))]
    assert outside == [], outside  # no CDN, no marker: nothing left 127.0.0.1


@pytest.mark.parametrize("project_db", ["sqlite", "postgres"], indirect=True)
def test_forms_are_safe_from_other_sites_and_kind_to_refused_users(
    chromium, api_server, project_db, sandboxes, other_site
):
    from playwright.sync_api import sync_playwright

    from roger_economic.config import load_file
    from roger_economic_airflow.runtime import endpoints

    load_file(ROOT / "config" / "agreements.example.yaml")
    results = _first_run(endpoints(), "forms__1", ("refresh", "extract", "validate"))
    assert all(r["outcome"] == "ok" for r in results.values()), results
    api_server.wait_ready()
    base = api_server.url
    target = f"{base}{PREFIX}/agreements/{AID}"
    wipe = "".join(
        f'<input type="hidden" name="{name}" value="">'
        for name in (
            "invoice_journal",
            "payment_journal",
            "default_account",
            "cat_account__cat_office",
            "cat_account__cat_software",
            "pm_account__pm_bank",
            "pm_account__pm_debit",
            "pm_account__pm_credit",
        )
    )
    autosubmit = "<script>document.forms[0].submit()</script>"
    other_site.pages.update(
        {
            "/wipe": f'<form method="post" action="{target}">{wipe}</form>{autosubmit}',
            "/resync": f'<form method="post" action="{target}/bills/resync-quarantined"></form>{autosubmit}',
        }
    )
    before, states = _mappings(), _states()
    assert before[0] and "quarantined" in states.values()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(20_000)
            login(page, base, "admin", PASSWORD)

            # 1. the headers of a page with client data
            response = page.goto(target)
            headers = response.headers
            assert "frame-ancestors 'self'" in headers["content-security-policy"]
            assert headers["x-content-type-options"] == "nosniff" and headers["cache-control"] == "no-store"
            assert headers["referrer-policy"] == "same-origin"

            # 2. another site's auto-submitting forms: cross-site (localhost) and same-site (127.0.0.1, other port)
            for attacker in (f"http://localhost:{other_site.port}", f"http://127.0.0.1:{other_site.port}"):
                for path, lands in (("/wipe", target), ("/resync", f"{target}/bills/resync-quarantined")):
                    with page.expect_response(lambda r, lands=lands: r.url == lands) as answer:
                        page.goto(f"{attacker}{path}")
                    assert answer.value.status == 403, (attacker, path)
                    page.wait_for_url(lands)
                    assert "403" in page.locator("h1").inner_text() and "nothing was" in page.content().lower()
            assert _mappings() == before and _states() == states

            # 3. bad query values and forged messages
            bad = page.goto(f"{base}{PREFIX}/agreements/{AID}/bills?page=abc")
            assert bad.status == 400 and bad.headers["content-type"].startswith("text/html")
            assert "page must be a whole number" in page.locator("main").inner_text()
            page.goto(f"{base}{PREFIX}/?msg=Your+e-conomic+token+expired:+call+%2B45+1234")
            assert "token expired" not in page.locator("body").inner_text()

            # 4. the session ends while a change is typed: the form comes back as typed, with a way to log in
            page.goto(target)
            ended_token = csrf_of(page)
            page.locator("select[name=cat_account__cat_marketing]").select_option(NEW_ACCOUNT)
            page.locator("input[name=supplier_group]").fill("7")
            context.clear_cookies()
            page.get_by_role("button", name="Save").click()
            page.locator(".errors").wait_for()
            assert "not logged in" in page.locator(".errors").inner_text()
            assert page.locator("select[name=cat_account__cat_marketing]").input_value() == NEW_ACCOUNT
            assert page.locator("input[name=supplier_group]").input_value() == "7"
            assert "cat_marketing" not in _mappings()[0]
            with page.expect_popup() as popup:  # log in again in another tab, as the page says
                page.get_by_role("link", name="Log in again").click()
            again = popup.value
            again.locator("input[name=username]").fill("admin")
            again.locator("input[name=password]").fill(PASSWORD)
            again.get_by_role("button", name="Sign in").click()
            again.wait_for_url(target)  # back on the page the form came from
            again.close()
            # the kept form holds the ended session's token: the new login refuses it once, keeps the form and
            # gives it the new session's token
            assert csrf_of(page) == ended_token
            page.get_by_role("button", name="Save").click()
            page.locator(".errors").wait_for()
            assert "another login" in page.locator(".errors").inner_text()
            assert page.locator("select[name=cat_account__cat_marketing]").input_value() == NEW_ACCOUNT
            assert "cat_marketing" not in _mappings()[0]
            assert csrf_of(page) not in ("", ended_token)
            page.get_by_role("button", name="Save").click()
            page.wait_for_url(re.compile(rf"{PREFIX}/agreements/{AID}\?msg=Saved"))
            assert "Saved." in page.locator(".msg").inner_text()
            assert _mappings()[0]["cat_marketing"] == int(NEW_ACCOUNT)

            # 4b. two logins of the same user at once: a token read from one is refused in the other, the form
            # kept; each keeps working with its own
            mine = csrf_of(page)
            other_context = browser.new_context()
            other = other_context.new_page()
            other.set_default_timeout(20_000)
            login(other, base, "admin", PASSWORD)
            other.goto(target)
            assert csrf_of(other) not in ("", mine)
            other.locator("input[name=supplier_group]").fill("8")
            borrowed = "(fields, value) => fields.forEach(f => { f.value = value })"
            other.locator(f"input[name={CSRF}]").evaluate_all(borrowed, mine)  # every form: Save's included
            other.get_by_role("button", name="Save").click()
            other.locator(".errors").wait_for()
            assert other.locator(".errors").inner_text().count("another login") == 1
            assert other.locator("input[name=supplier_group]").input_value() == "8"
            assert _supplier_group() == 7
            other_context.close()

            # 5. the login changes to a viewer in another tab: the save is refused, the form kept, and why
            page.locator("select[name=cat_account__cat_travel]").select_option(NEW_ACCOUNT)
            stored = _mappings()  # step 4's SAVE also stored the suggestions it showed (cat_travel → 2780)
            viewer_tab = context.new_page()
            login(viewer_tab, base, "viewer", VIEWER_PASSWORD)
            viewer_tab.close()
            page.get_by_role("button", name="Save").click()
            page.locator(".errors").wait_for()
            assert "Nothing was changed" in page.locator(".errors").inner_text()
            assert page.locator("select[name=cat_account__cat_travel]").input_value() == NEW_ACCOUNT
            assert _mappings() == stored and stored[0]["cat_travel"] != int(NEW_ACCOUNT)

            # 6. the viewer is offered no action
            page.goto(target)
            assert page.get_by_role("button", name="Save").count() == 0
            assert page.get_by_role("button", name="Refresh master data").count() == 0
            page.goto(f"{target}/bills")
            assert page.locator("tbody tr").count() > 0
            assert page.get_by_role("button", name=re.compile("Re-sync")).count() == 0
            context.close()
        finally:
            browser.close()
    assert _states() == states
