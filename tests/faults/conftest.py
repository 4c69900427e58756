"""Fixtures of the fault tests: fast retries, and sandboxes with the demo agreements loaded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devkit import local
from roger_economic.config import load_file
from tests.faults.helpers import FAST_RETRIES, ROOT


@pytest.fixture()
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAST_RETRIES.items():
        monkeypatch.setenv(name, value)


@pytest.fixture()
def economic_only(fast_retries):
    """The e-conomic sandbox alone (its Roger partner started with one bill, unused)."""
    roger, economic = local.start_sandboxes(agreements=1, bills=1)
    try:
        yield economic
    finally:
        roger.stop()
        economic.stop()


@pytest.fixture()
def demo(project_db, fast_retries) -> Iterator[tuple]:
    """Sandboxes (3 agreements, 8 bills each) and the demo agreements in the project database."""
    roger, economic = local.start_sandboxes(agreements=3, bills=8)
    try:
        load_file(ROOT / "config" / "agreements.example.yaml")
        yield roger, economic
    finally:
        roger.stop()
        economic.stop()
