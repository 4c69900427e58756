"""The night's groups follow what Airflow runs at once: no group waits for a slot behind another."""

from __future__ import annotations

from roger_economic.pipeline import groups
from roger_economic_airflow.runtime import max_groups


def test_no_more_groups_than_airflow_runs_tasks_of_the_run_at_once(monkeypatch):
    monkeypatch.delenv("ROGER_ECONOMIC_MAX_GROUPS", raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "4")
    monkeypatch.setenv("AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG", "16")
    ids = [f"agr_{i:04d}" for i in range(1, 2001)]
    assert max_groups() == 4
    assert [len(g["agreements"]) for g in groups(ids, max_groups=max_groups())] == [500] * 4
    monkeypatch.setenv("AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG", "2")
    assert max_groups() == 2, "the DAG's own bound on tasks at once counts too"
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "32")
    monkeypatch.setenv("AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG", "16")
    assert max_groups() == 8, "a large Airflow keeps 8 groups: more would mostly add task start-ups"
    assert len(groups(ids, max_groups=max_groups())) == 8
    assert len(groups(ids[:200], max_groups=max_groups())) == 2, "small firms keep groups of the default size"


def test_the_variable_overrides_airflow(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "4")
    monkeypatch.setenv("ROGER_ECONOMIC_MAX_GROUPS", "6")
    assert max_groups() == 6
