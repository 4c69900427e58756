"""The e-conomic sandbox's app-approval flow (README "Connection"), over real HTTP as a browser drives it."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from sandboxes import world
from sandboxes.httpbase import SandboxProcess

PUBLIC = "sbx-app-public-test"
CALLBACK = "https://roger.example/roger-economic/clients/callback?state=abc123"


@pytest.fixture(scope="module")
def sandbox():
    with SandboxProcess("sandboxes.economic", ["--agreements", "10", "--app-public-token", PUBLIC]) as proc:
        yield proc


@pytest.fixture(autouse=True)
def clean(sandbox):
    sandbox.control("POST", "reset", {})


def install_url(sandbox: SandboxProcess, **params: str) -> str:
    return f"{sandbox.base_url}/secure/api1/requestaccess.aspx?{urlencode(params)}"


def approve(sandbox: SandboxProcess, **params: str) -> requests.Response:
    """Open the installation URL, then send its "Tilføj app" form as a browser would."""
    page = requests.get(install_url(sandbox, **params), timeout=10)
    assert page.status_code == 200, page.text
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page.text))
    return requests.post(
        f"{sandbox.base_url}/secure/api1/requestaccess.aspx", data=fields, allow_redirects=False, timeout=10
    )


def self_of(sandbox: SandboxProcess, token: str) -> requests.Response:
    return requests.get(
        f"{sandbox.base_url}/self",
        timeout=10,
        headers={"X-AppSecretToken": world.DEFAULT_APP_SECRET, "X-AgreementGrantToken": token},
    )


def test_the_page_names_the_app_and_the_agreement_it_grants(sandbox):
    sandbox.control("POST", "approval", {"agreement": world.agreement_number(3)})
    page = requests.get(install_url(sandbox, appPublicToken=PUBLIC, redirectUrl=CALLBACK), timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert world.APP_NAME in page.text
    assert str(world.agreement_number(3)) in page.text
    assert "Tilføj app" in page.text


def test_tilfoej_app_redirects_with_a_fresh_grant_that_works_for_that_agreement(sandbox):
    sandbox.control("POST", "approval", {"agreement": world.agreement_number(3)})
    answer = approve(sandbox, appPublicToken=PUBLIC, redirectUrl=CALLBACK)
    assert answer.status_code == 302
    target = urlsplit(answer.headers["Location"])
    assert target.netloc == "roger.example" and target.path == "/roger-economic/clients/callback"
    query = parse_qs(target.query)
    assert query["state"] == ["abc123"]  # the callback's own parameters survive
    token = query["token"][0]
    assert token != world.grant_token(3)  # fresh, not the well-known demo token
    me = self_of(sandbox, token)
    assert me.status_code == 200
    body = me.json()
    assert body["agreementNumber"] == world.agreement_number(3)
    assert body["company"]["name"] == world.profile(3).company_name
    assert body["settings"]["baseCurrency"] == "DKK"
    assert {m["name"] for m in body["modules"]} >= {world.API_MODULE}
    second = parse_qs(
        urlsplit(approve(sandbox, appPublicToken=PUBLIC, redirectUrl=CALLBACK).headers["Location"]).query
    )["token"][0]
    assert second != token  # one grant per click


def test_without_redirect_url_the_page_shows_the_token(sandbox):
    answer = approve(sandbox, appPublicToken=PUBLIC)
    assert answer.status_code == 200
    token = re.search(r'<code class="grant-token">([^<]+)</code>', answer.text).group(1)
    assert self_of(sandbox, token).json()["agreementNumber"] == world.agreement_number(1)


def test_revoking_a_grant_makes_it_answer_401_and_leaves_others_alone(sandbox):
    first = parse_qs(urlsplit(approve(sandbox, appPublicToken=PUBLIC, redirectUrl=CALLBACK).headers["Location"]).query)[
        "token"
    ][0]
    second = parse_qs(
        urlsplit(approve(sandbox, appPublicToken=PUBLIC, redirectUrl=CALLBACK).headers["Location"]).query
    )["token"][0]
    sandbox.control("POST", "revoke", {"token": first})
    assert self_of(sandbox, first).status_code == 401
    assert self_of(sandbox, second).status_code == 200
    sandbox.control("POST", "revoke", {"agreement": world.agreement_number(1)})  # the whole agreement
    assert self_of(sandbox, second).status_code == 401


def test_an_unknown_app_or_a_bad_redirect_grants_nothing(sandbox):
    assert requests.get(install_url(sandbox, appPublicToken="someone-else"), timeout=10).status_code == 404
    bad = requests.get(install_url(sandbox, appPublicToken=PUBLIC, redirectUrl="javascript:alert(1)"), timeout=10)
    assert bad.status_code == 400
    forged = requests.post(
        f"{sandbox.base_url}/secure/api1/requestaccess.aspx",
        allow_redirects=False,
        timeout=10,
        data={"appPublicToken": "someone-else", "redirectUrl": CALLBACK},
    )
    assert forged.status_code == 404
    assert sandbox.control("GET", "approval", {})["grants"] == []
