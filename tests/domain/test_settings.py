"""The deployment's settings: read in one place, defaulted once, and a changed variable is seen on the next read."""

from __future__ import annotations

import re
from pathlib import Path

from roger_economic import settings
from roger_economic.http import RetryPolicy
from roger_economic.posting.loader import batch_size
from roger_economic.settings import Environment, environment

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_when_nothing_is_set():
    env = Environment.read({})
    assert (env.http_max_attempts, env.http_timeout, env.batch_size, env.group_size) == (6, 30.0, None, 100)
    assert env.db_url is None and env.alert_emails == () and env.alert_smtp_conn == "smtp_default"
    assert env == Environment()


def test_a_changed_variable_is_seen_on_the_next_read(monkeypatch):
    monkeypatch.setenv("ROGER_ECONOMIC_BATCH_SIZE", "3")
    assert batch_size() == 3
    first = environment()
    assert environment() is first, "unchanged variables: the settings are not read again"
    monkeypatch.setenv("ROGER_ECONOMIC_BATCH_SIZE", "5000")
    assert batch_size() == 200, "never more than the loader's maximum"
    monkeypatch.setenv("ROGER_ECONOMIC_HTTP_MAX_ATTEMPTS", "2")
    assert RetryPolicy().max_attempts == 2
    settings.reset()
    assert environment() is not first


def test_a_wrong_http_number_falls_back_to_its_default(caplog):
    env = Environment.read({"ROGER_ECONOMIC_HTTP_TIMEOUT": "soon", "ROGER_ECONOMIC_HTTP_BUDGET": "-1"})
    assert (env.http_timeout, env.http_budget) == (30.0, 120.0)
    assert "ROGER_ECONOMIC_HTTP_TIMEOUT='soon' is not a number" in caplog.text


def test_an_empty_variable_is_taken_as_unset_and_the_ca_bundle_has_a_second_name():
    """docker-compose's ``${VAR:-}`` sets a variable to nothing: the setting keeps its default."""
    env = Environment.read({"ROGER_ECONOMIC_GROUP_SIZE": "", "REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "/ca.pem"})
    assert (env.group_size, env.ca_bundle) == (100, "/ca.pem")
    assert Environment.read({"ROGER_ECONOMIC_ROGER_PAGE_SIZE": "900"}).roger_page_size == 500
    assert Environment.read({"ROGER_ECONOMIC_HTTP_MAX_ATTEMPTS": "0"}).http_max_attempts == 6


def test_every_setting_names_its_variable_once():
    assert len(settings.NAMES) == len(set(settings.NAMES))
    assert {"ROGER_ECONOMIC_DB_URL", "CURL_CA_BUNDLE", "ROGER_ECONOMIC_TIMEOUT_LOAD"} <= set(settings.NAMES)


def test_alert_recipients_and_task_timeouts():
    env = Environment.read({"ROGER_ECONOMIC_ALERT_EMAILS": " a@x.test, ,b@x.test", "ROGER_ECONOMIC_TIMEOUT_LOAD": "60"})
    assert env.alert_emails == ("a@x.test", "b@x.test")
    assert env.task_timeouts == {"load": "60"}


def test_only_the_settings_module_reads_the_environment():
    """Agreement tokens aside (``env:`` references name their own variable, credentials.resolve)."""
    readers = sorted(
        str(path.relative_to(ROOT))
        for folder in ("include", "plugins", "dags")
        for path in (ROOT / folder).rglob("*.py")
        if re.search(r"os\.environ|os\.getenv", path.read_text(encoding="utf-8"))
    )
    assert readers == ["include/roger_economic/credentials.py", "include/roger_economic/settings.py"]
