"""The deployment's settings: every environment variable the project reads, named, typed and defaulted once.

Code reads :func:`environment` (``environment().batch_size``), never ``os.environ``; agreement tokens are the
exception (``env:VAR`` references name their own variables, :mod:`roger_economic.credentials`). The settings
are read once and kept while the variables they come from keep their values: a test or a tool that changes
one sees the change on the next read, without a reset; :func:`reset` forgets them outright.

Values are kept as the environment gives them where the reader decides what a wrong value means (the e-conomic
conventions refuse one at import; the HTTP numbers fall back to their default with a warning).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

log = logging.getLogger(__name__)

TASK_TIMEOUT_PREFIX = "ROGER_ECONOMIC_TIMEOUT_"
TASKS = ("default", "plan", "extract", "validate", "load", "summarise", "refresh", "publish")


# a setting's reader: the variable's name, its text (set and not empty) and the setting's default → the value
Reader = Callable[[str, str, Any], Any]


def _text(name: str, raw: str, default: Any) -> str:
    return raw


def _strict(name: str, raw: str, default: Any) -> Any:
    """A number of the default's type; a wrong value stops the DAG file: it is a typo."""
    return type(default)(raw)


def _strict_float(name: str, raw: str, default: Any) -> float:
    return float(raw)


def _strict_count(name: str, raw: str, default: Any) -> int:
    """A whole number of at least 1; anything else stops the DAG file: it is a typo."""
    value = int(raw)
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {raw!r}")
    return value


def _int_or_none(name: str, raw: str, default: Any) -> int | None:
    try:
        return int(raw)
    except ValueError:
        return None


def _flag(name: str, raw: str, default: Any) -> bool:
    return raw == "1"


def _emails(name: str, raw: str, default: Any) -> tuple[str, ...]:
    return tuple(e.strip() for e in raw.split(",") if e.strip())


def _positive(name: str, raw: str, default: Any) -> Any:
    """A positive number of the default's type, else the default: a wrong value is logged, not fatal,
    because a retry setting must not stop a night."""
    try:
        value = float(raw)
    except ValueError:
        log.warning("%s=%r is not a number; using %s", name, raw, default)
        return default
    return type(default)(value) if value > 0 else default


def _at_least_one(name: str, raw: str, default: Any, high: int | None = None) -> int:
    """A whole number kept within ``[1, high]``, else the default."""
    try:
        value = int(raw)
    except ValueError:
        return default
    return max(1, value if high is None else min(high, value))


_one_to_500 = functools.partial(_at_least_one, high=500)


def _from(*variables: str, default: Any = None, read: Reader = _text) -> Any:
    """A setting read from the first of ``variables`` that is set and not empty (an empty one, as
    docker-compose's ``${VAR:-}`` writes it, is taken as unset), else ``default``."""
    return field(default=default, metadata={"variables": variables, "read": read})


@dataclass(frozen=True)
class Environment:
    """What the deployment set (docker-compose.yaml lists the ones it sets; the README the others)."""

    # the project database (``None``: SQLite under var/)
    db_url: str | None = _from("ROGER_ECONOMIC_DB_URL")
    # the two services (``None``: the Airflow connection roger_default / economic_default, else the sandboxes)
    roger_base_url: str | None = _from("ROGER_BASE_URL")
    economic_base_url: str | None = _from("ECONOMIC_BASE_URL")
    app_secret_token: str | None = _from("ECONOMIC_APP_SECRET_TOKEN")
    # "Add a client": the app's public token (else economic_default's field), where the browser approves it
    app_public_token: str | None = _from("ECONOMIC_APP_PUBLIC_TOKEN")
    approval_base_url: str | None = _from("ECONOMIC_APPROVAL_BASE_URL")
    # HTTP: retries, waits and deadlines (seconds), the CA bundle (else certifi's)
    http_max_attempts: int = _from("ROGER_ECONOMIC_HTTP_MAX_ATTEMPTS", default=6, read=_positive)
    http_base_delay: float = _from("ROGER_ECONOMIC_HTTP_BASE_DELAY", default=0.25, read=_positive)
    http_max_delay: float = _from("ROGER_ECONOMIC_HTTP_MAX_DELAY", default=30.0, read=_positive)
    http_budget: float = _from("ROGER_ECONOMIC_HTTP_BUDGET", default=120.0, read=_positive)
    http_timeout: float = _from("ROGER_ECONOMIC_HTTP_TIMEOUT", default=30.0, read=_positive)
    ca_bundle: str | None = _from("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    # Roger's feed: bills per page (1..500), pages one walk may take
    roger_page_size: int = _from("ROGER_ECONOMIC_ROGER_PAGE_SIZE", default=500, read=_one_to_500)
    roger_max_pages: int = _from("ROGER_ECONOMIC_ROGER_MAX_PAGES", default=1000, read=_at_least_one)
    # a night's shape: agreements per mapped group, groups at most (``None``: as many as Airflow runs tasks at
    # once), agreements at once per group, vouchers per POST (``None``: the loader's maximum), how long one
    # agreement's step may take, a lease's wait
    group_size: int = _from("ROGER_ECONOMIC_GROUP_SIZE", default=100, read=_strict)
    max_groups: int | None = _from("ROGER_ECONOMIC_MAX_GROUPS", read=_strict_count)
    load_threads: int = _from("ROGER_ECONOMIC_LOAD_THREADS", default=8, read=_strict)
    batch_size: int | None = _from("ROGER_ECONOMIC_BATCH_SIZE", read=_int_or_none)
    agreement_deadline: float | None = _from("ROGER_ECONOMIC_AGREEMENT_DEADLINE", read=_strict_float)
    lease_wait: float = _from("ROGER_ECONOMIC_LEASE_WAIT", default=300.0, read=_strict)
    data_docs: bool = _from("ROGER_ECONOMIC_DATA_DOCS", default=True, read=_flag)
    # the assumed e-conomic conventions, as written (economic/conventions.py checks them)
    credit_sign: str = _from("ECONOMIC_CREDIT_SIGN", default="-")
    scanning_module_names: str = _from("ECONOMIC_SCANNING_MODULE_NAMES", default="Indscanning,Scanning")
    too_large_status: str = _from("ECONOMIC_TOO_LARGE_STATUS", default="413")
    gone_entry_status: str = _from("ECONOMIC_GONE_ENTRY_STATUS", default="404")
    vat_zones: str = _from("ECONOMIC_VAT_ZONES", default="1,2,3")
    # alerts: a JSON webhook, e-mail recipients and the SMTP connection
    alert_webhook: str | None = _from("ROGER_ECONOMIC_ALERT_WEBHOOK")
    alert_emails: tuple[str, ...] = _from("ROGER_ECONOMIC_ALERT_EMAILS", default=(), read=_emails)
    alert_smtp_conn: str = _from("ROGER_ECONOMIC_ALERT_SMTP_CONN", default="smtp_default")
    # Airflow task timeouts in seconds by task, as written (roger_economic_airflow.limits checks them)
    task_timeouts: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, env: dict[str, str]) -> Environment:
        given: dict[str, Any] = {}
        for setting in fields(cls):
            variables = setting.metadata.get("variables", ())
            name = next((v for v in variables if env.get(v)), None)
            if name is not None:
                given[setting.name] = setting.metadata["read"](name, env[name], setting.default)
        timeouts = {task: raw for task in TASKS if (raw := env.get(f"{TASK_TIMEOUT_PREFIX}{task.upper()}", ""))}
        return cls(**given, task_timeouts=timeouts)


# every variable the settings come from: they are read again only when one of these changes
NAMES = (
    *(v for setting in fields(Environment) for v in setting.metadata.get("variables", ())),
    *(f"{TASK_TIMEOUT_PREFIX}{task.upper()}" for task in TASKS),
)

_read: tuple[tuple[Any, ...], Environment] | None = None
_ENCODED_NAMES = tuple(os.fsencode(name) for name in NAMES)
# the mapping os.environ and os.environb share on POSIX (keyed by encoded names); None elsewhere
_SHARED_DATA: dict[bytes, bytes] | None = getattr(os.environ, "_data", None) if os.name == "posix" else None
if getattr(getattr(os, "environb", None), "_data", None) is not _SHARED_DATA:  # not the same mapping after all
    _SHARED_DATA = None


def _raw_values() -> tuple[Any, ...]:
    """The variables' values as the process holds them, to see whether one changed.

    Asked for on every session and client, so it must be cheap: through ``os.environ`` each unset name
    costs a ``KeyError`` (about 35 µs for all of them); its underlying mapping of encoded names (the one
    ``os.environ`` and ``os.environb`` share on POSIX) answers in about 1 µs.
    """
    shared = _SHARED_DATA
    if getattr(os.environ, "_data", None) is not shared or shared is None:  # not POSIX, or os.environ replaced
        return tuple(map(os.environ.get, NAMES))
    return tuple(map(shared.get, _ENCODED_NAMES))


def environment() -> Environment:
    """The settings, read when first asked for and again only after one of their variables changed."""
    global _read
    values = _raw_values()
    if _read is None or _read[0] != values:
        env = {name: value for name in NAMES if (value := os.environ.get(name)) is not None}
        _read = (values, Environment.read(env))
    return _read[1]


def reset() -> None:
    """Forget the settings read (tests that replace ``os.environ`` wholesale)."""
    global _read
    _read = None
