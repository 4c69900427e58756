"""What a task needs from Airflow: endpoints from connections, the run's window and params."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta
from typing import Any

import pendulum

from roger_economic.credentials import Endpoints
from roger_economic.pipeline import Window

LOCAL_TZ = "Europe/Copenhagen"


def _connection(conn_id: str) -> Any | None:
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception:  # not defined: fall back to the environment
        return None


def _password(conn_id: str) -> str | None:
    conn = _connection(conn_id)
    return conn.password if conn is not None else None


def _base_url(conn_id: str, env: str, default: str) -> str:
    if os.environ.get(env):
        return os.environ[env]
    conn = _connection(conn_id)
    if conn is not None and conn.host:
        host = conn.host if "://" in conn.host else f"{conn.schema or 'https'}://{conn.host}"
        return f"{host}{':' + str(conn.port) if conn.port else ''}"
    return default


def endpoints() -> Endpoints:
    """Base URLs from env or connections ``roger_default``/``economic_default``; tokens resolved lazily."""
    app_secret_ref = (
        "env:ECONOMIC_APP_SECRET_TOKEN" if os.environ.get("ECONOMIC_APP_SECRET_TOKEN") else "conn:economic_default"
    )
    return Endpoints(
        roger_base_url=_base_url("roger_default", "ROGER_BASE_URL", "http://127.0.0.1:8081/v1"),
        economic_base_url=_base_url("economic_default", "ECONOMIC_BASE_URL", "http://127.0.0.1:8082"),
        app_secret_ref=app_secret_ref,
        conn_lookup=_password,
    )


def _day_start(text: str) -> datetime:
    return pendulum.parse(text, tz=LOCAL_TZ).start_of("day")


def window(context: dict[str, Any]) -> Window:
    """The run's window: the params' date range, else the data interval, else the last day."""
    params = context.get("params") or {}
    if params.get("from_date") or params.get("to_date"):
        since = _day_start(params["from_date"]) if params.get("from_date") else None
        before = _day_start(params["to_date"]).add(days=1) if params.get("to_date") else None
        return Window(_iso(since), _iso(before))
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None and start != end:
        return Window(_iso(start), _iso(end))
    now = pendulum.now("UTC")
    return Window(_iso(now - timedelta(days=1)), _iso(now))


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return pendulum.instance(moment).in_timezone("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def selected_agreements(context: dict[str, Any]) -> list[str] | None:
    chosen = (context.get("params") or {}).get("agreements") or []
    return [str(a).strip() for a in chosen if str(a).strip()] or None


def cpu_used() -> str:
    """The task process's CPU time so far, for its log (the benchmark adds these up per task)."""
    return f"task process CPU: {time.process_time():.2f} s"
