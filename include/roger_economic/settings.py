"""The deployment's settings: every environment variable the project reads, named, typed and defaulted once.

Code reads :func:`environment` (``environment().batch_size``), never ``os.environ``; agreement tokens are the
exception (``env:VAR`` references name their own variables, :mod:`roger_economic.credentials`). The settings
are read once and kept while the variables they come from keep their values: a test or a tool that changes
one sees the change on the next read, without a reset; :func:`reset` forgets them outright.

Values are kept as the environment gives them where the reader decides what a wrong value means (the e-conomic
conventions refuse one at import; the HTTP numbers fall back to their default with a warning).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

TASK_TIMEOUT_PREFIX = "ROGER_ECONOMIC_TIMEOUT_"
TASKS = ("default", "plan", "extract", "validate", "load", "summarise", "refresh", "publish")


def _number(env: dict[str, str], name: str, default: float) -> float:
    """A positive number, else ``default`` (a wrong value is logged, not fatal: a retry setting must not stop a
    night)."""
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        log.warning("%s=%r is not a number; using %s", name, raw, default)
        return default
    return value if value > 0 else default


def _int_or_none(raw: str | None) -> int | None:
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


def _given(env: dict[str, str], name: str, default: int) -> int:
    """The integer given, else ``default`` (unset, empty or not an integer)."""
    value = _int_or_none(env.get(name))
    return default if value is None else value


@dataclass(frozen=True)
class Environment:
    """What the deployment set (docker-compose.yaml lists the ones it sets; the README the others)."""

    # the project database (``None``: SQLite under var/)
    db_url: str | None = None
    # the two services (``None``: the Airflow connection roger_default / economic_default, else the sandboxes)
    roger_base_url: str | None = None
    economic_base_url: str | None = None
    app_secret_token: str | None = None
    # "Add a client": the app's public token (else economic_default's field), where the browser approves it
    app_public_token: str | None = None
    approval_base_url: str | None = None
    # HTTP: retries, waits and deadlines (seconds), the CA bundle (else certifi's)
    http_max_attempts: int = 6
    http_base_delay: float = 0.25
    http_max_delay: float = 30.0
    http_budget: float = 120.0
    http_timeout: float = 30.0
    ca_bundle: str | None = None
    # Roger's feed: bills per page (1..500), pages one walk may take
    roger_page_size: int = 500
    roger_max_pages: int = 1000
    # a night's shape: agreements per mapped group, groups at most, agreements at once per group, vouchers per
    # POST (``None``: the loader's maximum), how long one agreement's step may take, a lease's wait
    group_size: int = 100
    max_groups: int = 25
    load_threads: int = 8
    batch_size: int | None = None
    agreement_deadline: float | None = None
    lease_wait: float = 300.0
    data_docs: bool = True
    # the assumed e-conomic conventions, as written (economic/conventions.py checks them)
    credit_sign: str = "-"
    scanning_module_names: str = "Indscanning,Scanning"
    too_large_status: str = "413"
    gone_entry_status: str = "404"
    vat_zones: str = "1,2,3"
    # alerts: a JSON webhook, e-mail recipients and the SMTP connection
    alert_webhook: str | None = None
    alert_emails: tuple[str, ...] = ()
    alert_smtp_conn: str = "smtp_default"
    # Airflow task timeouts in seconds by task, as written (roger_economic_airflow.limits checks them)
    task_timeouts: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, env: dict[str, str]) -> Environment:
        def text(name: str) -> str | None:
            return env.get(name) or None

        def integer(name: str, default: int) -> int:
            raw = env.get(name)
            return int(raw) if raw is not None else default  # a wrong value stops the DAG file: it is a typo

        return cls(
            db_url=text("ROGER_ECONOMIC_DB_URL"),
            roger_base_url=text("ROGER_BASE_URL"),
            economic_base_url=text("ECONOMIC_BASE_URL"),
            app_secret_token=text("ECONOMIC_APP_SECRET_TOKEN"),
            app_public_token=text("ECONOMIC_APP_PUBLIC_TOKEN"),
            approval_base_url=text("ECONOMIC_APPROVAL_BASE_URL"),
            http_max_attempts=int(_number(env, "ROGER_ECONOMIC_HTTP_MAX_ATTEMPTS", 6)),
            http_base_delay=_number(env, "ROGER_ECONOMIC_HTTP_BASE_DELAY", 0.25),
            http_max_delay=_number(env, "ROGER_ECONOMIC_HTTP_MAX_DELAY", 30.0),
            http_budget=_number(env, "ROGER_ECONOMIC_HTTP_BUDGET", 120.0),
            http_timeout=_number(env, "ROGER_ECONOMIC_HTTP_TIMEOUT", 30.0),
            ca_bundle=text("REQUESTS_CA_BUNDLE") or text("CURL_CA_BUNDLE"),
            roger_page_size=max(1, min(500, _given(env, "ROGER_ECONOMIC_ROGER_PAGE_SIZE", 500))),
            roger_max_pages=max(1, _given(env, "ROGER_ECONOMIC_ROGER_MAX_PAGES", 1000)),
            group_size=integer("ROGER_ECONOMIC_GROUP_SIZE", 100),
            max_groups=integer("ROGER_ECONOMIC_MAX_GROUPS", 25),
            load_threads=integer("ROGER_ECONOMIC_LOAD_THREADS", 8),
            batch_size=_int_or_none(env.get("ROGER_ECONOMIC_BATCH_SIZE")),
            agreement_deadline=float(raw) if (raw := env.get("ROGER_ECONOMIC_AGREEMENT_DEADLINE")) else None,
            lease_wait=float(env.get("ROGER_ECONOMIC_LEASE_WAIT", "300")),
            data_docs=env.get("ROGER_ECONOMIC_DATA_DOCS", "1") == "1",
            credit_sign=env.get("ECONOMIC_CREDIT_SIGN", "-"),
            scanning_module_names=env.get("ECONOMIC_SCANNING_MODULE_NAMES", "Indscanning,Scanning"),
            too_large_status=env.get("ECONOMIC_TOO_LARGE_STATUS", "413"),
            gone_entry_status=env.get("ECONOMIC_GONE_ENTRY_STATUS", "404"),
            vat_zones=env.get("ECONOMIC_VAT_ZONES", "1,2,3"),
            alert_webhook=text("ROGER_ECONOMIC_ALERT_WEBHOOK"),
            alert_emails=tuple(e.strip() for e in env.get("ROGER_ECONOMIC_ALERT_EMAILS", "").split(",") if e.strip()),
            alert_smtp_conn=env.get("ROGER_ECONOMIC_ALERT_SMTP_CONN", "smtp_default"),
            task_timeouts={task: raw for task in TASKS if (raw := env.get(f"{TASK_TIMEOUT_PREFIX}{task.upper()}", ""))},
        )


# every variable the settings come from: they are read again only when one of these changes
NAMES = (
    "ROGER_ECONOMIC_DB_URL",
    "ROGER_BASE_URL",
    "ECONOMIC_BASE_URL",
    "ECONOMIC_APP_SECRET_TOKEN",
    "ECONOMIC_APP_PUBLIC_TOKEN",
    "ECONOMIC_APPROVAL_BASE_URL",
    "ROGER_ECONOMIC_HTTP_MAX_ATTEMPTS",
    "ROGER_ECONOMIC_HTTP_BASE_DELAY",
    "ROGER_ECONOMIC_HTTP_MAX_DELAY",
    "ROGER_ECONOMIC_HTTP_BUDGET",
    "ROGER_ECONOMIC_HTTP_TIMEOUT",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "ROGER_ECONOMIC_ROGER_PAGE_SIZE",
    "ROGER_ECONOMIC_ROGER_MAX_PAGES",
    "ROGER_ECONOMIC_GROUP_SIZE",
    "ROGER_ECONOMIC_MAX_GROUPS",
    "ROGER_ECONOMIC_LOAD_THREADS",
    "ROGER_ECONOMIC_BATCH_SIZE",
    "ROGER_ECONOMIC_AGREEMENT_DEADLINE",
    "ROGER_ECONOMIC_LEASE_WAIT",
    "ROGER_ECONOMIC_DATA_DOCS",
    "ECONOMIC_CREDIT_SIGN",
    "ECONOMIC_SCANNING_MODULE_NAMES",
    "ECONOMIC_TOO_LARGE_STATUS",
    "ECONOMIC_GONE_ENTRY_STATUS",
    "ECONOMIC_VAT_ZONES",
    "ROGER_ECONOMIC_ALERT_WEBHOOK",
    "ROGER_ECONOMIC_ALERT_EMAILS",
    "ROGER_ECONOMIC_ALERT_SMTP_CONN",
    *(f"{TASK_TIMEOUT_PREFIX}{task.upper()}" for task in TASKS),
)

_read: tuple[tuple[str | None, ...], Environment] | None = None


def environment() -> Environment:
    """The settings, read when first asked for and again only after one of their variables changed."""
    global _read
    values = tuple(os.environ.get(name) for name in NAMES)
    if _read is None or _read[0] != values:
        _read = (values, Environment.read({n: v for n, v in zip(NAMES, values, strict=True) if v is not None}))
    return _read[1]


def reset() -> None:
    """Forget the settings read (tests that replace ``os.environ`` wholesale)."""
    global _read
    _read = None
