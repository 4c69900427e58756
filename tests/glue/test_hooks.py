"""The Airflow hooks: the two connection types Airflow lists, and the Connections page's Test against the sandboxes.

Connections come from ``AIRFLOW_CONN_*`` variables (Airflow's own environment secrets backend), the sandboxes are
real HTTP servers, and ProvidersManager is Airflow's own, run in a fresh interpreter that sees the project's
``apache_airflow_provider`` entry point exactly as pyproject.toml declares it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from sandboxes import world
from sandboxes.httpbase import SandboxProcess

ROOT = Path(__file__).resolve().parents[2]
GRANT = world.grant_token(2)
ROGER_TOKEN = world.roger_token(2)


@pytest.fixture(scope="module")
def economic():
    with SandboxProcess("sandboxes.economic", ["--agreements", "3"]) as proc:
        yield proc


@pytest.fixture(scope="module")
def roger():
    with SandboxProcess("sandboxes.roger", ["--companies", "3", "--bills", "2"]) as proc:
        yield proc


def connection(monkeypatch, conn_id: str, **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def test_providers_manager_lists_both_connection_types_and_the_test_button_works(tmp_path, economic, roger):
    """The entry point as pyproject.toml declares it, in a distribution's metadata (as ``pip install -e .``
    writes it), seen by Airflow's own ProvidersManager in a fresh interpreter; there, a Connection's
    ``test_connection()`` (what the Connections page's Test button runs) finds the hook by its type."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = project["project"]["entry-points"]["apache_airflow_provider"]["provider_info"]
    dist = tmp_path / f"roger_economic-{project['project']['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['project']['name']}\nVersion: {project['project']['version']}\n"
    )
    (dist / "entry_points.txt").write_text(f"[apache_airflow_provider]\nprovider_info = {target}\n")
    script = textwrap.dedent("""
        import json
        import os
        from airflow.providers_manager import ProvidersManager
        pm = ProvidersManager()
        hooks = pm.hooks
        out = {t: {"class": hooks[t].hook_class_name, "name": hooks[t].hook_name,
                   "attr": hooks[t].connection_id_attribute_name} for t in ("economic", "roger") if hooks.get(t)}
        out["providers"] = sorted(pm.providers)
        ours = ("extra__economic", "extra__roger")
        out["widgets"] = sorted(k for k in pm.connection_form_widgets if k.startswith(ours))
        out["sensitive"] = sorted(k for k, w in pm.connection_form_widgets.items() if w.is_sensitive
                                  and k.startswith("extra__economic"))
        out["labels"] = {t: pm.field_behaviours.get(t, {}).get("relabeling") for t in ("economic", "roger")}
        from airflow.models.connection import Connection
        tests = {
            "economic": Connection(conn_id="transient_e", conn_type="economic", host=os.environ["E_URL"],
                                   password=os.environ["GRANT"],
                                   extra=json.dumps({"app_secret_token": os.environ["SECRET"]})),
            "roger": Connection(conn_id="transient_r", conn_type="roger", host=os.environ["R_URL"],
                                password=os.environ["ROGER"], extra=json.dumps({"company_id": os.environ["CID"]})),
        }
        for name, conn in tests.items():
            os.environ[f"AIRFLOW_CONN_{conn.conn_id.upper()}"] = conn.as_json()  # as the API's test route does
            out[f"test_{name}"] = list(conn.test_connection())
        print(json.dumps(out))
    """)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "include")]),
        "E_URL": economic.base_url,
        "GRANT": GRANT,
        "SECRET": world.DEFAULT_APP_SECRET,
        "R_URL": f"{roger.base_url}/v1",
        "ROGER": ROGER_TOKEN,
        "CID": world.company_id(2),
    }
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert "roger-economic" in found["providers"]
    assert found["economic"] == {
        "class": "roger_economic_airflow.hooks.EconomicHook",
        "name": "e-conomic",
        "attr": "economic_conn_id",
    }
    assert found["roger"] == {
        "class": "roger_economic_airflow.hooks.RogerHook",
        "name": "Roger",
        "attr": "roger_conn_id",
    }
    assert found["widgets"] == [
        "extra__economic__app_public_token",
        "extra__economic__app_secret_token",
        "extra__roger__company_id",
    ]
    assert found["sensitive"] == ["extra__economic__app_secret_token"]
    assert "grant token" in found["labels"]["economic"]["password"]
    assert found["labels"]["roger"]["password"] == "Roger API token"
    ok, message = found["test_economic"]
    assert ok and str(world.agreement_number(2)) in message and world.profile(2).company_name in message
    ok, message = found["test_roger"]
    assert ok and world.company_id(2) in message


def test_economic_test_connection_names_the_agreement(monkeypatch, economic, caplog):
    """A client's connection holds only its grant: the app secret comes from economic_default."""
    from roger_economic_airflow.hooks import EconomicHook

    connection(
        monkeypatch,
        "economic_default",
        conn_type="economic",
        host=economic.base_url,
        password="not-used-here",
        extra={"app_secret_token": world.DEFAULT_APP_SECRET, "app_public_token": "sbx-app-public"},
    )
    connection(monkeypatch, "economic_client", conn_type="economic", host=economic.base_url, password=GRANT)
    ok, message = EconomicHook("economic_client").test_connection()
    assert ok, message
    assert str(world.agreement_number(2)) in message and world.profile(2).company_name in message


def test_economic_test_connection_fails_on_a_bad_grant_without_showing_secrets(monkeypatch, economic, caplog):
    from roger_economic_airflow.hooks import EconomicHook

    connection(
        monkeypatch,
        "economic_bad",
        conn_type="economic",
        host=economic.base_url,
        password="sbx-grant-9999",
        extra={"app_secret_token": "the-app-secret"},
    )
    with caplog.at_level(logging.DEBUG):
        ok, message = EconomicHook("economic_bad").test_connection()
    assert not ok and "401" in message
    for secret in ("sbx-grant-9999", "the-app-secret"):
        assert secret not in message and secret not in caplog.text


def test_own_extras_never_become_headers(monkeypatch, economic):
    from roger_economic_airflow.hooks import EconomicHook

    connection(
        monkeypatch,
        "economic_hdr",
        conn_type="economic",
        host=economic.base_url,
        password=GRANT,
        extra={"app_secret_token": world.DEFAULT_APP_SECRET, "app_public_token": "pub", "timeout": 5},
    )
    session = EconomicHook("economic_hdr").get_conn()
    assert session.headers["X-AppSecretToken"] == world.DEFAULT_APP_SECRET
    assert session.headers["X-AgreementGrantToken"] == GRANT
    assert not {"app_secret_token", "app_public_token"} & {k.lower() for k in session.headers}
    assert session.auth is None


def test_roger_test_connection_names_the_company_and_fails_on_a_bad_token(monkeypatch, roger):
    from roger_economic_airflow.hooks import RogerHook

    connection(
        monkeypatch,
        "roger_client",
        conn_type="roger",
        host=f"{roger.base_url}/v1",
        password=ROGER_TOKEN,
        extra={"company_id": world.company_id(2)},
    )
    ok, message = RogerHook("roger_client").test_connection()
    assert ok, message
    assert world.company_id(2) in message
    connection(
        monkeypatch,
        "roger_bad",
        conn_type="roger",
        host=f"{roger.base_url}/v1",
        password="sbx-roger-0001",
        extra={"company_id": world.company_id(2)},
    )  # another company's token
    ok, message = RogerHook("roger_bad").test_connection()
    assert not ok and "sbx-roger-0001" not in message


def test_the_hooks_import_in_an_interpreter_where_the_provider_is_installed():
    """With the project pip-installed (as CI and the image do), Airflow's ProvidersManager calls the entry point
    while Airflow itself is being imported: ``get_provider_info`` must not import the hooks (it did, and every
    later ``import airflow`` in that process failed with a circular import)."""
    from importlib.metadata import entry_points

    names = {ep.value for ep in entry_points(group="apache_airflow_provider")}
    if "roger_economic_airflow.provider:get_provider_info" not in names:
        pytest.skip("the project is not pip-installed in this interpreter (pip install -e .)")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from roger_economic_airflow.hooks import EconomicHook, RogerHook; import airflow.models",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
