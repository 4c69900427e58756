"""The habits are enforced: lint, format and types are clean, and the README's test command, CI and pre-commit
run the same checks; the packaging keeps run time, tests and tooling apart."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CHECKS = (".venv/bin/ruff check", ".venv/bin/ruff format --check", ".venv/bin/mypy")
DEV_TOOLS = {"pytest", "hypothesis", "playwright", "ruff", "mypy", "pre-commit"}


def readme_test_command() -> str:
    block = (ROOT / "README.md").read_text(encoding="utf-8").split("```bash\n", 1)[1].split("```", 1)[0]
    (command,) = [line for line in block.splitlines() if "requirements-dev.txt" in line]
    return command


def steps(command: str) -> list[str]:
    return [step.strip() for step in command.split("&&")]


def pins(name: str) -> dict[str, str]:
    found = {}
    for raw in (ROOT / name).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-r"):
            package, _, version = line.partition("==")
            found[re.sub(r"\[.*\]", "", package).lower()] = version
    return found


def test_ruff_is_clean():
    result = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]


def test_the_tree_is_formatted():
    result = subprocess.run([str(BIN / "ruff"), "format", "--check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]


def test_domain_package_type_checks():
    """mypy over the DAGs, the plugin, the glue and the domain (pyproject's [tool.mypy] files)."""
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]


def test_mypy_covers_every_layer_and_refuses_untyped_defs_in_the_domain():
    mypy = PYPROJECT["tool"]["mypy"]
    layers = {"dags", "plugins", "include/roger_economic_airflow", "include/roger_economic"}
    assert set(mypy["files"]) == layers | {"include/roger_economic_migrations"}
    domain = [o for o in mypy["overrides"] if "roger_economic.*" in o["module"]]
    assert domain and domain[0]["disallow_untyped_defs"] is True


def test_ci_runs_exactly_the_readme_test_command():
    command = readme_test_command()
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert command in ci
    run = steps(command)
    assert run[-1] == ".venv/bin/python -m pytest"
    assert run[-1 - len(CHECKS) : -1] == list(CHECKS), "lint, format and types are checked before the tests"


def test_pre_commit_runs_the_same_checks_as_the_readme():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    local = [hook for repo in config["repos"] if repo["repo"] == "local" for hook in repo["hooks"]]
    assert [hook["entry"] for hook in local] == list(CHECKS)
    assert all(hook["language"] == "system" and hook["pass_filenames"] is False for hook in local)
    assert not [repo["repo"] for repo in config["repos"] if "ruff" in repo["repo"] or "mypy" in repo["repo"]], (
        "a hook from another repository would run another version than the venv's"
    )


def test_run_time_requirements_carry_no_test_or_tooling_package():
    runtime, dev = pins("requirements.txt"), pins("requirements-dev.txt")
    assert not DEV_TOOLS & set(runtime), DEV_TOOLS & set(runtime)
    assert set(dev) >= DEV_TOOLS and not set(runtime) & set(dev)
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text(encoding="utf-8")
    assert all(runtime.values()), "every run-time package is pinned"
    declared = {re.split(r"[<>=~!\[ ]", d, maxsplit=1)[0].lower() for d in PYPROJECT["project"]["dependencies"]}
    assert not DEV_TOOLS & declared
    assert declared - {"certifi", "pyyaml", "pydantic", "pendulum", "jinja2"} <= set(runtime), (
        "what pyproject declares beyond Airflow's own dependencies is pinned in requirements.txt"
    )


def test_the_installed_package_leaves_sandboxes_demo_and_benchmark_out():
    from setuptools import find_packages

    found = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    packages = find_packages(where=str(ROOT / found["where"][0]), include=found["include"])
    assert {"roger_economic", "roger_economic_airflow"} <= set(packages)
    ours = {"roger_economic", "roger_economic_airflow", "roger_economic_migrations"}
    assert all(p.split(".")[0] in ours for p in packages), packages
    assert (ROOT / "sandboxes").is_dir() and not (ROOT / "include" / "sandboxes").exists()
    assert PYPROJECT["project"]["scripts"] == {"roger-economic": "roger_economic_airflow.cli:main"}
