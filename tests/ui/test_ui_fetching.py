"""Fetching master data from the page, visibly (issue 18, point 3): the direct fetch, and a DAG run followed.

Through Airflow's real FastAPI app with the plugin mounted, the real sandboxes, a real ``roger_master_data`` run
triggered into Airflow's metadata DB (parsed from ``dags/``; no scheduler runs in the tests, which is the case
the page must name), and real Airflow connections.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from tests.ui.test_ui_onboarding import connect, economic, land, roger, world_env  # noqa: F401
from tests.ui.test_ui_plugin import AID, HTML, PREFIX, admin, airflow_app, seeded, tokens, viewer  # noqa: F401

from roger_economic.db import models, session

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
REFRESH = 'http-equiv="refresh"'


@pytest.fixture()
def master_data_dag(airflow_app):  # noqa: F811
    """``roger_master_data`` as the dag-processor would have stored it, its runs and scheduler jobs removed after."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.jobs.job import Job
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    bag = DagBag(dag_folder=str(ROOT / "dags" / "roger_master_data.py"))
    assert not bag.import_errors
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    yield
    with create_session() as sess:
        sess.query(DagRun).filter(DagRun.dag_id == "roger_master_data").delete(synchronize_session=False)
        sess.query(Job).filter(Job.job_type == "SchedulerJob").delete(synchronize_session=False)


def _set_run(run_id: str, state: str) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as sess:
        sess.query(DagRun).filter(DagRun.run_id == run_id).update({DagRun.state: state}, synchronize_session=False)


def _scheduler_alive() -> None:
    from airflow.jobs.job import Job
    from airflow.utils.session import create_session

    with create_session() as sess:
        sess.add(Job(job_type="SchedulerJob", state="running", latest_heartbeat=datetime.now(UTC), hostname="test"))


def _state(page: str) -> str:
    return re.search(r'<strong class="state">(\w+)</strong>', page).group(1)


def test_the_refresh_button_follows_the_run_and_says_when_no_scheduler_picks_it_up(admin, seeded, master_data_dag):  # noqa: F811
    sent = admin.post(f"{PREFIX}/agreements/{AID}/refresh", headers=HTML)
    assert sent.status_code == 303, sent.text
    where = sent.headers["location"]
    assert urlsplit(where).path == f"{PREFIX}/agreements/{AID}/progress"
    run_id = parse_qs(urlsplit(where).query)["run"][0]

    queued = admin.get(where, headers=HTML).text
    assert _state(queued) == "queued" and REFRESH in queued and 'class="spinner"' in queued
    assert "No scheduler is picking this run up" in queued and 'id="no-scheduler"' in queued
    assert f'action="{PREFIX}/agreements/{AID}/fetch"' in queued and "Fetch here now" in queued

    _scheduler_alive()  # a scheduler with a fresh heartbeat: the run is merely waiting for it
    waiting = admin.get(where, headers=HTML).text
    assert _state(waiting) == "queued" and "Waiting for the scheduler" in waiting and 'id="no-scheduler"' not in waiting

    _set_run(run_id, "running")
    running = admin.get(where, headers=HTML).text
    assert _state(running) == "running" and REFRESH in running
    assert re.search(r'<li class="past">queued</li><li class="now">running</li>', running)

    _set_run(run_id, "failed")
    failed = admin.get(where, headers=HTML).text
    assert _state(failed) == "failed" and REFRESH not in failed and "Fetch again, here" in failed

    _set_run(run_id, "success")
    done = admin.get(where, headers=HTML)
    assert done.status_code == 303 and urlsplit(done.headers["location"]).path == f"{PREFIX}/agreements/{AID}"
    assert "Master data fetched" in admin.get(done.headers["location"], headers=HTML).text


def test_the_progress_page_runs_no_script(admin, seeded, master_data_dag):  # noqa: F811
    where = admin.post(f"{PREFIX}/agreements/{AID}/refresh", headers=HTML).headers["location"]
    page = admin.get(where, headers=HTML)
    assert "<script" not in page.text.lower()
    assert "script-src 'none'" in page.headers["content-security-policy"]


def test_a_viewer_may_follow_but_not_fetch(viewer, seeded):  # noqa: F811
    assert viewer.post(f"{PREFIX}/agreements/{AID}/fetch").status_code == 403
    page = viewer.get(f"{PREFIX}/agreements/{AID}/progress", params={"run": "ui_fetch__nothing"}, headers=HTML)
    assert page.status_code == 200 and _state(page.text) == "failed" and "Fetch again" not in page.text


def _follow(client, where: str) -> tuple[str, str]:
    """Follow a progress page as the browser does, to where it ends: (final URL, last page's text)."""
    import time

    deadline = time.monotonic() + 60
    while True:
        page = client.get(where, headers=HTML)
        if page.status_code == 303:
            return page.headers["location"], ""
        if REFRESH not in page.text:
            return where, page.text
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_fetch_here_now_needs_no_scheduler_and_is_in_the_history(admin, seeded, world_env):  # noqa: F811
    callback, grant = connect(admin)
    aid, _ = land(admin, callback)
    with session() as sess:
        sess.get(models.AgreementStatus, aid).master_data_at = None
    sent = admin.post(f"{PREFIX}/agreements/{aid}/fetch", headers=HTML)
    assert sent.status_code == 303
    assert parse_qs(urlsplit(sent.headers["location"]).query)["run"][0].startswith("ui_fetch__")
    setup, _ = _follow(admin, sent.headers["location"])
    assert urlsplit(setup).path == f"{PREFIX}/agreements/{aid}"
    page = admin.get(setup, headers=HTML).text
    assert "Master data fetched. Fetched " in page and "Roger categories" in page
    with session() as sess:
        assert sess.get(models.AgreementStatus, aid).master_data_at is not None
        actions = [a.action for a in sess.query(models.SetupAudit).filter(models.SetupAudit.agreement_id == aid)]
    assert actions.count("fetch_master_data") == 2 and actions.count("master_data_fetched") == 2

    world_env.control("POST", "revoke", {"token": grant})  # e-conomic now refuses the grant: the fetch fails, visibly
    ended, text = _follow(admin, admin.post(f"{PREFIX}/agreements/{aid}/fetch", headers=HTML).headers["location"])
    assert urlsplit(ended).path.endswith("/progress") and _state(text) == "failed"
    assert "token rejected" in text and "Fetch again, here" in text and grant not in text
