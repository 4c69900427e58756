"""The ``roger-economic`` command, run as a process against a real project database and the real sandboxes.

The shared test environment may not have the console script on its PATH (it is installed by ``pip install -e .``),
so the tests run the module the ``[project.scripts]`` entry names, and check that the entry names it.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "agreements.example.yaml"
ENTRY = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]["roger-economic"]
MODULE, _, FUNCTION = ENTRY.partition(":")


def roger_economic(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", MODULE, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=ROOT,
        timeout=180,
    )


def rows(output: str) -> dict[str, str]:
    """The check table's lines by agreement id."""
    return {line.split()[0]: line for line in output.splitlines() if line.startswith("agr_")}


def test_the_console_script_is_the_module_the_tests_run():
    assert callable(getattr(importlib.import_module(MODULE), FUNCTION))
    assert ENTRY == "roger_economic_airflow.cli:main"


def test_migrate_creates_the_project_tables(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = roger_economic("migrate", ROGER_ECONOMIC_DB_URL=url)
    assert result.returncode == 0, result.stderr
    assert {"agreements", "staged_bills", "alembic_version"} <= set(sa.inspect(sa.create_engine(url)).get_table_names())


def test_config_loads_and_exports_agreements(project_db, tmp_path):
    loaded = roger_economic("config", "load", str(EXAMPLE))
    assert loaded.returncode == 0, loaded.stderr
    assert "3 added" in loaded.stdout
    exported = tmp_path / "today.yaml"
    assert roger_economic("config", "export", str(exported)).returncode == 0
    again = roger_economic("config", "load", str(exported))
    assert again.returncode == 0 and "0 added" in again.stdout and "3 unchanged" in again.stdout, again.stdout
    refused = roger_economic("config", "load", str(tmp_path / "missing.yaml"))
    assert refused.returncode == 2 and "error" in refused.stderr


def test_check_reports_each_agreements_connections_and_prerequisites(project_db, sandboxes):
    from roger_economic.config import load_file
    from roger_economic.db import models, session

    _roger, economic = sandboxes
    load_file(EXAMPLE)

    healthy = roger_economic("check")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    table = rows(healthy.stdout)
    assert set(table) == {"agr_0001", "agr_0002", "agr_0003"}
    assert all("✗" not in line for line in table.values()), healthy.stdout
    assert "3 agreements checked, 0 failed" in healthy.stdout

    broken = roger_economic("check", ROGER_TOKEN_AGR_0002="wrong", ECONOMIC_GRANT_TOKEN_AGR_0003="wrong")
    assert broken.returncode == 1
    table = rows(broken.stdout)
    assert "✗" not in table["agr_0001"]
    assert "✗" in table["agr_0002"].split("✓")[0], "Roger's column fails for agr_0002"
    assert table["agr_0003"].count("✗") == 3, "e-conomic refused: API access and Indscanning are not known"
    assert "2 failed: agr_0002, agr_0003" in broken.stdout
    assert "wrong" not in broken.stdout + broken.stderr, "a token never reaches the output"

    with session() as sess:
        sess.get_one(models.Agreement, "agr_0003").book_without_attachment = True
    economic.control("POST", "conventions", {"scanning_module_name": "SomethingElse"})  # no module is Indscanning
    without_scanning = roger_economic("check", "--agreement", "agr_0001", "--agreement", "agr_0003")
    assert without_scanning.returncode == 1
    table = rows(without_scanning.stdout)
    assert set(table) == {"agr_0001", "agr_0003"}
    assert "enable Indscanning" in table["agr_0001"]
    assert "books without attachment" in table["agr_0003"]
    assert "1 failed: agr_0001" in without_scanning.stdout


def test_check_refuses_an_unknown_agreement(project_db):
    result = roger_economic("check", "--agreement", "agr_nope")
    assert result.returncode == 2 and "agr_nope" in result.stderr
