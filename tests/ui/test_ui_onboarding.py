"""Adding a client from the page (issue 18): Roger checked live, e-conomic's approval, the agreement created.

Through Airflow's real FastAPI app with the plugin mounted (the fixtures of ``test_ui_plugin``), the real Roger
and e-conomic sandboxes (the latter serving e-conomic's approval page) and real Airflow connections in Airflow's
metadata DB.
"""

from __future__ import annotations

import json
import os
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from tests.ui.test_ui_plugin import AID, HTML, PREFIX, admin, airflow_app, seeded, tokens, viewer  # noqa: F401

from sandboxes import world
from sandboxes.httpbase import SandboxProcess

os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", "8CLkF5nYYw5ANbqMXCr6JsXY0FyqcZW4m3CSbPTDSes=")

PUBLIC = "sbx-app-public"
NEW = 4  # sandbox index of the client added here: Roger cmp_0004, e-conomic 700004


@pytest.fixture(scope="module")
def economic():
    with SandboxProcess("sandboxes.economic", ["--agreements", "6", "--app-public-token", PUBLIC]) as proc:
        yield proc


@pytest.fixture(scope="module")
def roger():
    with SandboxProcess("sandboxes.roger", ["--companies", "6", "--bills", "2"]) as proc:
        yield proc


@pytest.fixture()
def world_env(economic, roger, monkeypatch, airflow_app):  # noqa: F811
    """The firm's settings as an operator sets them, and no connection left behind by the test."""
    economic.control("POST", "reset", {})
    economic.control("POST", "approval", {"agreement": world.agreement_number(NEW)})
    monkeypatch.setenv("ROGER_BASE_URL", f"{roger.base_url}/v1")
    monkeypatch.setenv("ECONOMIC_BASE_URL", economic.base_url)
    monkeypatch.setenv("ECONOMIC_APPROVAL_BASE_URL", economic.base_url)
    monkeypatch.delenv("ECONOMIC_APP_SECRET_TOKEN", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_ECONOMIC_DEFAULT",
        json.dumps(
            {
                "conn_type": "economic",
                "host": economic.base_url,
                "password": world.DEFAULT_APP_SECRET,
                "extra": {"app_public_token": PUBLIC},
            }
        ),
    )
    yield economic
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as sess:
        sess.query(Connection).filter(
            Connection.conn_id.like("%agr_7%") | Connection.conn_id.like("roger_economic_onboarding_%")
        ).delete(synchronize_session=False)


def roger_step(client, company: int = NEW, token: str | None = None):
    return client.post(
        f"{PREFIX}/clients/new",
        headers=HTML,
        data={"company_id": world.company_id(company), "roger_token": token or world.roger_token(company)},
    )


def state_of(page: str) -> str:
    from urllib.parse import unquote

    return unquote(re.search(r'href="[^"]*/clients/connect\?state=([^"]+)"', page).group(1))


def approve(install_url: str) -> str:
    """The browser at e-conomic: the installation URL's page, then "Tilføj app"; returns where it is sent."""
    page = requests.get(install_url, timeout=10)
    assert page.status_code == 200 and "Tilføj app" in page.text
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page.text))
    answer = requests.post(install_url.split("?")[0], data=fields, allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    return answer.headers["Location"]


def connect(client, company: int = NEW) -> tuple[str, str]:
    """Steps 1 and 2 and the approval: (the callback's path and query, the grant token e-conomic sent)."""
    page = roger_step(client, company)
    assert page.status_code == 200, page.text
    sent = client.get(f"{PREFIX}/clients/connect", headers=HTML, params={"state": state_of(page.text)})
    assert sent.status_code == 303
    back = urlsplit(approve(sent.headers["location"]))
    return f"{back.path}?{back.query}", parse_qs(back.query)["token"][0]


def land(client, callback: str) -> tuple[str, str]:
    """The callback, then its progress page as a browser follows it (it looks again by itself until the master
    data is in): (the new agreement's id, the setup page's URL it lands on)."""
    answer = client.get(callback, headers=HTML)
    assert answer.status_code == 303, answer.text
    where = answer.headers["location"]
    assert urlsplit(where).path.endswith("/progress"), where
    aid = urlsplit(where).path.split("/")[-2]
    deadline = time.monotonic() + 60
    while urlsplit(where).path.endswith("/progress"):
        page = client.get(where, headers=HTML)
        if page.status_code == 303:
            where = page.headers["location"]
            continue
        assert page.status_code == 200 and 'http-equiv="refresh"' in page.text, page.text  # still fetching
        assert time.monotonic() < deadline, "the master data was not fetched within a minute"
        time.sleep(0.2)
    return aid, where


def project_rows(url: str) -> str:
    """Every row of every project table, as text (to look for a token in)."""
    from sqlalchemy import MetaData, create_engine, select

    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        text = "\n".join(repr(row) for table in meta.sorted_tables for row in conn.execute(select(table)))
    engine.dispose()
    return text


def airflow_connection(conn_id: str):
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as sess:
        conn = sess.query(Connection).filter(Connection.conn_id == conn_id).one_or_none()
        if conn is None:
            return None
        sess.expunge(conn)
        return conn


def pending_connections() -> list[str]:
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as sess:
        return [c.conn_id for c in sess.query(Connection).filter(Connection.conn_id.like("roger_economic_onb%"))]


def agreement(aid: str):
    from roger_economic.db import models, session

    with session() as sess:
        row = sess.get(models.Agreement, aid)
        status = sess.get(models.AgreementStatus, aid)
        if row is not None:
            sess.expunge(row)
        if status is not None:
            sess.expunge(status)
        return row, status


# ------------------------------------------------------------------------------------------------ tests


def test_roger_step_shows_the_companys_name_and_connect(admin, seeded, world_env, roger):  # noqa: F811
    name = requests.get(
        f"{roger.base_url}/v1/companies/{world.company_id(NEW)}",
        timeout=10,
        headers={"Authorization": f"Bearer {world.roger_token(NEW)}"},
    ).json()["name"]
    page = roger_step(admin)
    assert page.status_code == 200
    assert name in page.text and "CONNECT E-CONOMIC" in page.text
    assert world.roger_token(NEW) not in page.text


def test_a_wrong_roger_token_stops_at_step_one(admin, seeded, world_env):  # noqa: F811
    page = roger_step(admin, token=world.roger_token(1))  # another company's token
    assert page.status_code == 400
    assert "Roger did not accept" in page.text and "CONNECT E-CONOMIC" not in page.text
    assert world.roger_token(1) not in page.text


def test_connect_redirects_to_the_installation_url_with_state(admin, seeded, world_env):  # noqa: F811
    page = roger_step(admin)
    state = state_of(page.text)
    sent = admin.get(f"{PREFIX}/clients/connect", headers=HTML, params={"state": state})
    assert sent.status_code == 303
    target = urlsplit(sent.headers["location"])
    assert f"{target.scheme}://{target.netloc}" == world_env.base_url
    assert target.path == "/secure/api1/requestaccess.aspx"
    query = parse_qs(target.query)
    assert query["appPublicToken"] == [PUBLIC]
    back = urlsplit(query["redirectUrl"][0])
    assert back.path == f"{PREFIX}/clients/callback" and parse_qs(back.query) == {"state": [state]}


def test_the_callback_creates_the_agreement_and_its_connections(admin, seeded, world_env):  # noqa: F811
    callback, grant = connect(admin)
    aid, setup = land(admin, callback)
    assert aid == f"agr_{world.agreement_number(NEW)}"
    assert urlsplit(setup).path == f"{PREFIX}/agreements/{aid}"
    assert grant not in setup and "token" not in parse_qs(urlsplit(setup).query)
    row, status = agreement(aid)
    assert (row.roger_company_id, row.economic_agreement_number, row.active) == (
        world.company_id(NEW),
        world.agreement_number(NEW),
        True,
    )
    assert (row.economic_token_ref, row.roger_token_ref) == (f"conn:economic_{aid}", f"conn:roger_{aid}")
    assert row.name == world.profile(NEW).company_name
    assert (status.api_access, status.scanning_addon) == (True, world.profile(NEW).scanning_addon)
    grant_conn, roger_conn = airflow_connection(f"economic_{aid}"), airflow_connection(f"roger_{aid}")
    assert grant_conn.password == grant and grant_conn.conn_type == "economic"
    assert roger_conn.password == world.roger_token(NEW)
    assert roger_conn.extra_dejson["company_id"] == row.roger_company_id
    assert grant_conn.is_encrypted and roger_conn.is_encrypted  # Fernet, as Airflow stores a connection's secrets
    assert not pending_connections()  # the one-time state is used up, the Roger token kept only in roger_<id>
    rows = project_rows(seeded)
    assert grant not in rows and world.roger_token(NEW) not in rows
    page = admin.get(setup, headers=HTML)
    assert page.status_code == 200 and "Connected, and the master data fetched" in page.text
    assert 'id="prereq-api"' in page.text and "No master data stored" not in page.text
    assert re.search(rf"e-conomic agreement <strong>{world.agreement_number(NEW)}</strong>", page.text)
    assert "base currency\n<strong>DKK</strong>" in page.text  # /self, as fetched
    assert "added this client" in page.text and "master data fetch ui_fetch__" in page.text  # the audit trail


def test_a_forged_or_reused_callback_attaches_nothing(admin, seeded, world_env):  # noqa: F811
    callback, grant = connect(admin)
    state = parse_qs(urlsplit(callback).query)["state"][0]
    forged = admin.get(f"{PREFIX}/clients/callback?state=forged-state&token={grant}", headers=HTML)
    missing = admin.get(f"{PREFIX}/clients/callback?token={grant}", headers=HTML)
    for answer in (forged, missing):
        assert answer.status_code == 303 and urlsplit(answer.headers["location"]).path == f"{PREFIX}/clients/new"
        assert grant not in answer.headers["location"]
    assert agreement(f"agr_{world.agreement_number(NEW)}") == (None, None)
    assert land(admin, callback)[1].startswith(f"{PREFIX}/agreements/")
    again = admin.get(f"{PREFIX}/clients/callback?state={state}&token={grant}", headers=HTML)  # used once already
    assert urlsplit(again.headers["location"]).path == f"{PREFIX}/clients/new"
    assert "nothing was attached" in parse_qs(urlsplit(again.headers["location"]).query)["msg"][0]


def test_another_logins_state_is_refused(airflow_app, admin, tokens, seeded, world_env):  # noqa: F811
    """The state is bound to the login session that started it: another login of the same user (a new JWT)
    can neither follow nor finish it, and does not spend it."""
    from fastapi.testclient import TestClient
    from roger_economic_ui import onboarding, security
    from tests.ui.test_ui_plugin import SITE, _new_login

    from roger_economic.db import session

    callback, _grant = connect(admin)
    state = parse_qs(urlsplit(callback).query)["state"][0]
    mine, other = security.session_id(tokens["admin"]), security.session_id(_new_login("admin"))
    assert onboarding.pending(other, state) is None and onboarding.pending("", state) is None
    assert onboarding.pending(mine, state) is not None
    with session() as sess, pytest.raises(onboarding.OnboardingError, match="nothing was attached"):
        onboarding.finish(sess, other, state, world.grant_token(NEW))
    with TestClient(
        airflow_app, follow_redirects=False, cookies={"_token": _new_login("admin")}, headers={"Origin": SITE}
    ) as same_user_other_login:
        sent = same_user_other_login.get(f"{PREFIX}/clients/connect", headers=HTML, params={"state": state})
        assert urlsplit(sent.headers["location"]).path == f"{PREFIX}/clients/new"
        back = same_user_other_login.get(callback, headers=HTML)
        assert urlsplit(back.headers["location"]).path == f"{PREFIX}/clients/new"
    assert agreement(f"agr_{world.agreement_number(NEW)}") == (None, None)
    assert onboarding.pending(mine, state) is not None  # not spent by the other login's attempts
    done = admin.get(callback, headers=HTML)  # the login that started it finishes it
    assert urlsplit(done.headers["location"]).path.startswith(f"{PREFIX}/agreements/")


def test_adding_a_client_is_offered_only_with_the_right_to_create_connections(airflow_app, admin, seeded):  # noqa: F811
    """SimpleAuthManager's "user" role may edit the DAGs but not create connections: not offered "Add a client";
    a step 1 it sends anyway (or sent with an ended session) is refused with the company id kept, never the token."""
    from fastapi.testclient import TestClient
    from roger_economic_ui import security
    from tests.ui.test_ui_plugin import SITE, _new_login

    assert "Add a client" in admin.get(f"{PREFIX}/", headers=HTML).text
    jwt = _new_login("user")
    with TestClient(
        airflow_app,
        follow_redirects=False,
        cookies={"_token": jwt},
        headers={"Origin": SITE, "X-CSRF-Token": security.csrf_token(security.session_id(jwt))},
    ) as user:
        overview = user.get(f"{PREFIX}/", headers=HTML).text
        setup = user.get(f"{PREFIX}/agreements/{AID}", headers=HTML).text
        assert "Agreements" in overview and "Add a client" not in overview
        assert ">Save</button>" in setup and "/clients/new" not in setup and "Remove this client" not in setup
        remove = user.post(f"{PREFIX}/agreements/{AID}/deactivate", headers=HTML, data={"confirm": "yes"})
        assert remove.status_code == 403  # it would delete the grant's connection
        typed = {"company_id": "cmp_0042", "roger_token": "sbx-roger-TYPED-SECRET"}
        refused = user.post(f"{PREFIX}/clients/new", headers=HTML, data=typed)
    assert refused.status_code == 403
    assert "may not add a client" in refused.text and "create Airflow connections" in refused.text
    assert 'name="company_id" value="cmp_0042"' in refused.text and "TYPED-SECRET" not in refused.text
    with TestClient(airflow_app, follow_redirects=False, headers={"Origin": SITE}) as ended:
        gone = ended.post(f"{PREFIX}/clients/new", headers=HTML, data=typed)
    assert gone.status_code == 401 and "not logged in" in gone.text
    assert 'name="company_id" value="cmp_0042"' in gone.text and "TYPED-SECRET" not in gone.text


def test_an_expired_state_attaches_nothing(admin, seeded, world_env, monkeypatch):  # noqa: F811
    from roger_economic_ui import onboarding

    monkeypatch.setattr(onboarding, "STATE_TTL", -1)  # started "too long ago" at once
    state = state_of(roger_step(admin).text)
    sent = admin.get(f"{PREFIX}/clients/connect", headers=HTML, params={"state": state})
    assert urlsplit(sent.headers["location"]).path == f"{PREFIX}/clients/new"
    done = admin.get(f"{PREFIX}/clients/callback", headers=HTML, params={"state": state, "token": world.grant_token(4)})
    assert urlsplit(done.headers["location"]).path == f"{PREFIX}/clients/new"
    assert agreement(f"agr_{world.agreement_number(NEW)}") == (None, None)


def test_one_company_connect_another_client_goes_back_to_the_choice(admin, seeded, world_env):  # noqa: F811
    callback, _ = connect(admin)
    page = admin.get(land(admin, callback)[1], headers=HTML).text
    assert re.search(rf'id="connect-another" href="{PREFIX}/clients/new">Connect another client</a>', page)
    assert 'id="choose-mode"' in admin.get(f"{PREFIX}/clients/new", headers=HTML).text


# ------------------------------------------------------------------------------------------------ several companies


def queue_step(client, company: int, token: str | None = None):
    return client.post(
        f"{PREFIX}/clients/new",
        headers=HTML,
        data={
            "mode": "several",
            "company_id": world.company_id(company),
            "roger_token": token or world.roger_token(company),
        },
    )


def next_client(client) -> str:
    """ "Connect another client" (or the list's CONNECT E-CONOMIC): the installation URL it goes to at once."""
    sent = client.get(f"{PREFIX}/clients/next", headers=HTML)
    assert sent.status_code == 303, sent.text
    assert urlsplit(sent.headers["location"]).path == "/secure/api1/requestaccess.aspx", sent.headers["location"]
    return sent.headers["location"]


def state_in(install_url: str) -> str:
    redirect = parse_qs(urlsplit(install_url).query)["redirectUrl"][0]
    return parse_qs(urlsplit(redirect).query)["state"][0]


def callback_of(install_url: str) -> str:
    back = urlsplit(approve(install_url))
    return f"{back.path}?{back.query}"


def test_add_a_client_asks_one_company_or_several(admin, seeded, world_env):  # noqa: F811
    choice = admin.get(f"{PREFIX}/clients/new", headers=HTML).text
    assert 'id="choose-mode"' in choice and 'name="company_id"' not in choice
    assert "One company</a>" in choice and "Several companies (accountancy firm)</a>" in choice
    one = admin.get(f"{PREFIX}/clients/new", headers=HTML, params={"mode": "one"}).text
    assert 'name="mode"\n value="one"' in one and "Check with Roger</button>" in one.replace("\n", "")
    several = admin.get(f"{PREFIX}/clients/new", headers=HTML, params={"mode": "several"}).text
    assert "Clients to connect (0)" in several and 'value="several"' in several
    assert "/clients/next" not in several  # nobody to connect yet


def test_several_companies_each_approval_goes_on_to_the_next_at_once(admin, seeded, world_env):  # noqa: F811
    """A firm lists two Roger companies (each checked live, its name shown), then connects them one approval
    after the other: after the first, "Connect another client" goes straight to e-conomic for the second."""
    first, second = NEW, 5
    added = queue_step(admin, first)
    assert added.status_code == 200 and world.profile(first).company_name in added.text
    listed = queue_step(admin, second)
    assert "Clients to connect (2)" in listed.text and world.profile(second).company_name in listed.text
    assert world.roger_token(first) not in listed.text and world.roger_token(second) not in listed.text
    assert 'id="connect-next" href="' + f'{PREFIX}/clients/next"' in listed.text
    assert len(pending_connections()) == 2

    aid1, setup = land(admin, callback_of(next_client(admin)))
    assert aid1 == f"agr_{world.agreement_number(first)}"
    page = admin.get(setup, headers=HTML).text
    assert "Connected, and the master data fetched" in page and "(1 waiting)" in page
    assert f'id="connect-another" href="{PREFIX}/clients/next"' in page
    assert world.profile(second).company_name in page

    world_env.control("POST", "approval", {"agreement": world.agreement_number(second)})  # its agreement at e-conomic
    aid2, setup = land(admin, callback_of(next_client(admin)))  # nothing typed in between
    assert aid2 == f"agr_{world.agreement_number(second)}"
    for aid, company in ((aid1, first), (aid2, second)):
        row, _ = agreement(aid)
        assert (row.roger_company_id, row.economic_agreement_number) == (
            world.company_id(company),
            world.agreement_number(company),
        )
        assert airflow_connection(f"roger_{aid}").password == world.roger_token(company)
    grants = {airflow_connection(f"economic_{aid}").password for aid in (aid1, aid2)}
    assert len(grants) == 2  # each its own grant
    assert not pending_connections()
    page = admin.get(setup, headers=HTML).text  # the list is done: back to the choice
    assert f'id="connect-another" href="{PREFIX}/clients/new">' in page and "To add the next client" in page
    done = admin.get(f"{PREFIX}/clients/next", headers=HTML)
    assert "No client of yours is waiting" in parse_qs(urlsplit(done.headers["location"]).query)["msg"][0]


def test_a_queued_clients_state_is_fresh_one_time_and_this_logins(airflow_app, admin, seeded, world_env):  # noqa: F811
    """Each jump to e-conomic makes a fresh state and kills the one before; a forged, an old, a reused or
    another login's state attaches nothing, and another login neither sees nor spends the list."""
    from fastapi.testclient import TestClient
    from tests.ui.test_ui_plugin import SITE, _new_login

    queue_step(admin, NEW)
    old = next_client(admin)
    fresh = next_client(admin)  # e.g. the user came back without approving, then clicked again
    assert state_in(old) != state_in(fresh)
    aid = f"agr_{world.agreement_number(NEW)}"

    def refused(answer) -> bool:
        return answer.status_code == 303 and urlsplit(answer.headers["location"]).path == f"{PREFIX}/clients/new"

    grant = world.grant_token(NEW)
    assert refused(admin.get(callback_of(old), headers=HTML))  # the first state died with the second jump
    assert refused(admin.get(f"{PREFIX}/clients/callback?state=forged&token={grant}", headers=HTML))
    assert agreement(aid) == (None, None)
    assert pending_connections()  # the client still waits, under its fresh state
    with TestClient(
        airflow_app, follow_redirects=False, cookies={"_token": _new_login("admin")}, headers={"Origin": SITE}
    ) as other_login:
        assert "Clients to connect (0)" in other_login.get(f"{PREFIX}/clients/new?mode=several", headers=HTML).text
        nothing = other_login.get(f"{PREFIX}/clients/next", headers=HTML)
        assert "No client of yours" in parse_qs(urlsplit(nothing.headers["location"]).query)["msg"][0]
        callback = callback_of(fresh)
        assert refused(other_login.get(callback, headers=HTML))
    assert agreement(aid) == (None, None)
    assert land(admin, callback)[0] == aid  # the login that made it finishes it
    assert refused(admin.get(callback, headers=HTML))  # once only
    assert airflow_connection(f"economic_{aid}") is not None


def test_a_firms_client_refused_at_the_callback_stays_on_its_list(admin, seeded, world_env):  # noqa: F811
    """The second client approved in the wrong agreement (the first's, connected already): nothing attached, the
    client waits again, and the next jump (a fresh state) connects it."""
    queue_step(admin, NEW)
    queue_step(admin, 5)
    assert land(admin, callback_of(next_client(admin)))[0] == f"agr_{world.agreement_number(NEW)}"
    refused = admin.get(callback_of(next_client(admin)), headers=HTML)  # e-conomic still in NEW's agreement
    msg = parse_qs(urlsplit(refused.headers["location"]).query)["msg"][0]
    assert "already" in msg and "stays on your list" in msg, msg
    assert "Clients to connect (1)" in admin.get(refused.headers["location"], headers=HTML).text
    world_env.control("POST", "approval", {"agreement": world.agreement_number(6)})
    aid, _ = land(admin, callback_of(next_client(admin)))
    assert aid == f"agr_{world.agreement_number(6)}"
    assert airflow_connection(f"roger_{aid}").password == world.roger_token(5)
    assert agreement(aid)[0].roger_company_id == world.company_id(5)
    assert not pending_connections()


def test_a_queued_company_is_checked_before_it_waits(admin, seeded, world_env):  # noqa: F811
    wrong = queue_step(admin, NEW, token=world.roger_token(1))
    assert wrong.status_code == 400 and "Roger did not accept" in wrong.text and world.roger_token(1) not in wrong.text
    assert "Clients to connect (0)" in wrong.text
    assert queue_step(admin, NEW).status_code == 200
    twice = queue_step(admin, NEW)
    assert twice.status_code == 400 and "in the list already" in twice.text
    taken = queue_step(admin, 1)  # the seeded agreement's Roger company
    assert taken.status_code == 400 and f"agreement {AID} already" in taken.text
    assert "Clients to connect (1)" in taken.text and len(pending_connections()) == 1
    assert 'id="queue"' in admin.get(f"{PREFIX}/clients/new", headers=HTML).text  # the list, not the choice


def test_an_agreement_or_company_already_used_is_refused(admin, seeded, world_env):  # noqa: F811
    callback, _ = connect(admin)
    assert land(admin, callback)[1].startswith(f"{PREFIX}/agreements/")
    callback, _ = connect(admin, company=5)  # another Roger company, the same e-conomic agreement 700004
    refused = admin.get(callback, headers=HTML)
    msg = parse_qs(urlsplit(refused.headers["location"]).query)["msg"][0]
    assert urlsplit(refused.headers["location"]).path == f"{PREFIX}/clients/new" and "already" in msg
    world_env.control("POST", "approval", {"agreement": world.agreement_number(6)})
    callback, _ = connect(admin, company=1)  # cmp_0001 is the seeded agreement's Roger company
    msg = parse_qs(urlsplit(admin.get(callback, headers=HTML).headers["location"]).query)["msg"][0]
    assert "Roger company cmp_0001" in msg and AID in msg
    assert agreement(f"agr_{world.agreement_number(6)}") == (None, None)
    assert airflow_connection(f"economic_agr_{world.agreement_number(6)}") is None


def test_check_again_reads_self_live(admin, seeded, world_env):  # noqa: F811
    callback, grant = connect(admin)
    aid, _ = land(admin, callback)
    world_env.control("POST", "revoke", {"token": grant})
    checked = admin.post(f"{PREFIX}/agreements/{aid}/prerequisites", headers=HTML)
    assert checked.status_code == 303
    assert agreement(aid)[1].api_access is False
    page = admin.get(checked.headers["location"], headers=HTML)
    assert "refused" in page.text and "401" in page.text and grant not in page.text
    world_env.control("POST", "unrevoke", {"token": grant})
    admin.post(f"{PREFIX}/agreements/{aid}/prerequisites", headers=HTML)
    assert agreement(aid)[1].api_access is True


def test_without_indscanning_the_page_says_book_without_attachment_is_needed(admin, seeded, world_env):  # noqa: F811
    from roger_economic.db import models, session

    with session() as sess:
        sess.get(models.AgreementStatus, AID).scanning_addon = False
    page = admin.get(f"{PREFIX}/agreements/{AID}", headers=HTML).text
    assert 'id="no-scanning"' in page and "Book without attachment" in page and "Indscanning" in page


def test_removing_a_client_asks_then_deactivates_and_deletes_the_grant(admin, seeded, world_env):  # noqa: F811
    callback, _ = connect(admin)
    aid, _ = land(admin, callback)
    asked = admin.post(f"{PREFIX}/agreements/{aid}/deactivate", headers=HTML)
    assert asked.status_code == 200 and "Settings → Apps" in asked.text
    assert agreement(aid)[0].active is True and airflow_connection(f"economic_{aid}") is not None
    done = admin.post(f"{PREFIX}/agreements/{aid}/deactivate", headers=HTML, data={"confirm": "yes"})
    assert done.status_code == 303
    assert agreement(aid)[0].active is False  # the row and its history stay
    assert airflow_connection(f"economic_{aid}") is None
    page = admin.get(f"{PREFIX}/agreements/{aid}", headers=HTML).text
    assert "removed this client" in page and "added this client" in page


def test_a_viewer_cannot_add_a_client(viewer, seeded, world_env):  # noqa: F811
    assert viewer.get(f"{PREFIX}/clients/new", headers=HTML).status_code == 403


def test_the_callbacks_token_is_redacted_in_airflows_access_log():
    """e-conomic names the parameter ``token``; Airflow's access log (uvicorn's own is off) hides such values."""
    from airflow.api_fastapi.common.http_access_log import _redact_query_string

    logged = _redact_query_string("state=abc&token=sbx-grant-0004-secretpart")
    assert "secretpart" not in logged and "state=abc" in logged


def test_the_pipeline_reads_an_added_client_through_its_connections(admin, seeded, world_env):  # noqa: F811
    """What the callback stored is what a run uses: the master-data refresh of the new agreement works with only
    the ``conn:`` references it got and the firm's app connection."""
    from roger_economic_ui import onboarding

    from roger_economic import pipeline
    from roger_economic.credentials import Endpoints

    callback, _ = connect(admin)
    aid, _ = land(admin, callback)
    ends = onboarding.endpoints()
    run = Endpoints(
        ends.roger_base_url, ends.economic_base_url, "conn:economic_default", onboarding.connection_password
    )
    result = pipeline.refresh_master_data([aid], run, "onboarding__1")
    assert result[aid]["outcome"] == "ok", result
    page = admin.get(f"{PREFIX}/agreements/{aid}", headers=HTML).text
    assert "No master data stored" not in page and "cat_" in page  # Roger's categories, ready to map
