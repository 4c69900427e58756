"""Adding a client from the page: Roger checked live, e-conomic's app approval, the agreement created.

The flow (routes in :mod:`roger_economic_ui.app`):

1. The Roger company id and API token are checked live (``GET /companies/{id}``); the company's name comes back
   as proof. The token is kept until the callback in a *pending* Airflow connection (Fernet-encrypted like every
   connection, never in the project database), whose id is derived from a one-time ``state`` value.
2. CONNECT E-CONOMIC sends the browser to e-conomic's installation URL
   (``{approval base}/secure/api1/requestaccess.aspx?appPublicToken=...&redirectUrl=<callback>?state=...``).
3. The callback takes e-conomic's ``token``, takes the pending connection (one use: it is deleted at once; it must
   belong to the same login and not be older than :data:`STATE_TTL`), reads ``/self`` with the grant, stores
   both tokens as Airflow connections (``economic_<agreement>``, ``roger_<agreement>``) and creates the agreement
   with ``conn:`` references, refusing a Roger company or an e-conomic agreement another agreement already has.

*Several companies* (an accountancy firm): the Roger companies are entered first, each checked live, into a
*queue* of pending connections held per login session (:func:`enqueue`, :func:`queue`); no state exists for them
yet. :func:`take_next` gives the oldest one a fresh one-time state, so that after each approval "Connect another
client" is one link straight to e-conomic's installation URL; each callback takes exactly the client its state was
made for.

A forged callback (no, a wrong, a used or another login's state) attaches nothing. Nothing here writes a token
into a log, an exception text, the project database or a URL the browser keeps.

Settings: the app public token is ``economic_default``'s ``app_public_token`` field (or
``$ECONOMIC_APP_PUBLIC_TOKEN``); the approval page's base URL is ``$ECONOMIC_APPROVAL_BASE_URL``, else
``economic_default``'s ``approval_base_url`` field, else :data:`APPROVAL_BASE_URL`.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from roger_economic import agreement_status, config, masterdata
from roger_economic.credentials import resolve
from roger_economic.db import models
from roger_economic.economic.client import EconomicClient
from roger_economic.errors import ConfigError
from roger_economic.http import Calls, RetryPolicy
from roger_economic.model import Agreement
from roger_economic.roger.client import RogerClient
from roger_economic.settings import environment

APPROVAL_BASE_URL = "https://secure.e-conomic.com"
INSTALL_PATH = "/secure/api1/requestaccess.aspx"
APP_CONN = "economic_default"
PENDING_PREFIX = "roger_economic_onboarding_"
STATE_TTL = 30 * 60  # seconds a started connection may take to come back
QUEUE_TTL = 8 * 60 * 60  # seconds a firm's queued Roger company waits for its turn at e-conomic
DEFAULT_JOURNAL = 1  # e-conomic's first daybook; the setup page chooses the real ones
CHECK_POLICY = RetryPolicy(max_attempts=2, base_delay=0.2, max_delay=1.0, budget=5.0, timeout=15.0)


class OnboardingError(Exception):
    """A step that cannot go on; the text is shown to the user (it never holds a token)."""


class Mode(StrEnum):
    """Whether the user adds one company or a firm's several, one approval after the other."""

    ONE = "one"
    SEVERAL = "several"


@dataclass(frozen=True)
class Pending:
    state: str
    company_id: str
    company_name: str


@dataclass(frozen=True)
class Queued:
    """A firm's Roger company waiting for its e-conomic approval (``at_economic``: its state is out, unanswered)."""

    company_id: str
    company_name: str
    at_economic: bool


# ------------------------------------------------------------------------------------------------ Airflow


def _connection(conn_id: str) -> Any | None:
    from airflow.models.connection import Connection

    try:
        return Connection.get_connection_from_secrets(conn_id)
    except Exception:  # not defined anywhere
        return None


def _extra(conn: Any, name: str) -> str:
    from roger_economic_airflow.hooks import form_field

    return form_field(conn, "economic", name)


def _store_connection(conn_id: str, conn_type: str, host: str, password: str, extra: dict[str, Any]) -> None:
    """Create or replace one connection in Airflow's metadata DB (its password and extra Fernet-encrypted)."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as sess:
        sess.query(Connection).filter(Connection.conn_id == conn_id).delete()
        sess.add(
            Connection(
                conn_id=conn_id,
                conn_type=conn_type,
                host=host,
                password=password,
                extra=json.dumps(extra) if extra else None,
            )
        )


def delete_connection(conn_id: str) -> bool:
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as sess:
        return bool(sess.query(Connection).filter(Connection.conn_id == conn_id).delete())


def _owned(extra: dict[str, Any], login: str) -> bool:
    """Whether a pending connection was started by this login session (never by a request without one)."""
    return bool(login) and extra.get("login") == login


def _take_pending(conn_id: str, login: str) -> dict[str, Any] | None:
    """A pending connection of this login session, deleted in the same transaction: of two callbacks with one
    state, one wins; another login's callback (the same user's included) neither uses nor spends it."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as sess:
        conn = sess.query(Connection).filter(Connection.conn_id == conn_id).with_for_update().one_or_none()
        if conn is None or not _owned(conn.extra_dejson, login) or not conn.extra_dejson.get("expires"):
            return None  # (a queued client has no state out: nothing may answer for it)
        taken = {"password": conn.password, "extra": conn.extra_dejson, "host": conn.host}
        if not sess.query(Connection).filter(Connection.conn_id == conn_id).delete():
            return None
    return taken


# ------------------------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class Bases:
    roger_base_url: str
    economic_base_url: str


def endpoints() -> Bases:
    from roger_economic_airflow.hooks import ECONOMIC_BASE_URL
    from roger_economic_airflow.runtime import base_url

    return Bases(
        base_url("roger_default", "ROGER_BASE_URL", "http://127.0.0.1:8081/v1", _connection),
        base_url(APP_CONN, "ECONOMIC_BASE_URL", ECONOMIC_BASE_URL, _connection),
    )


def connection_password(conn_id: str) -> str | None:
    conn = _connection(conn_id)
    return conn.password if conn is not None else None


def app_public_token() -> str:
    token = _extra(_connection(APP_CONN), "app_public_token") or environment().app_public_token or ""
    if not token:
        raise OnboardingError(
            f"No app public token: set the 'App public token' field of the {APP_CONN} connection "
            f"(or $ECONOMIC_APP_PUBLIC_TOKEN)."
        )
    return token


def approval_base_url() -> str:
    return (
        environment().approval_base_url or _extra(_connection(APP_CONN), "approval_base_url") or APPROVAL_BASE_URL
    ).rstrip("/")


def app_secret() -> str:
    from roger_economic_airflow.hooks import EconomicHook

    conn = _connection(APP_CONN)
    secret = EconomicHook(APP_CONN).app_secret(conn) if conn is not None else ""
    secret = secret or environment().app_secret_token or ""
    if not secret:
        raise OnboardingError(f"No app secret token: set the {APP_CONN} connection (or $ECONOMIC_APP_SECRET_TOKEN).")
    return secret


# ------------------------------------------------------------------------------------------------ the steps


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()[:40]


def roger_company(company_id: str, token: str) -> dict[str, Any]:
    """Step 1's live check: Roger's ``GET /companies/{id}`` with the token (its error texts hold no token)."""
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", company_id or ""):
        raise OnboardingError("The Roger company id is 1-64 letters, digits or _ . : -")
    if not token:
        raise OnboardingError("The Roger API token is missing.")
    client = RogerClient(endpoints().roger_base_url, company_id, token, Calls("onboarding", CHECK_POLICY))
    try:
        company = client.company()
    except Exception as exc:
        raise OnboardingError(f"Roger did not accept this company id and token: {exc}") from None
    finally:
        client.close()
    if not isinstance(company, dict) or company.get("id") != company_id:
        raise OnboardingError("Roger answered for another company than the one given.")
    return company


def start(login: str, company_id: str, token: str) -> Pending:
    """Step 1: check Roger live, keep the token in a pending connection, return the one-time state (bound to the
    ``login`` session that started it)."""
    forget_expired()
    company = roger_company(company_id, token)
    state = secrets.token_urlsafe(32)
    _store_connection(
        PENDING_PREFIX + _digest(state),
        "roger",
        endpoints().roger_base_url,
        token,
        {
            "company_id": company_id,
            "company_name": str(company.get("name") or ""),
            "login": login,
            "expires": time.time() + STATE_TTL,
        },
    )
    return Pending(state, company_id, str(company.get("name") or ""))


def pending(login: str, state: str) -> Pending | None:
    """A started connection of this login session that has not expired (not taken: step 2 only looks)."""
    conn = _connection(PENDING_PREFIX + _digest(state)) if state else None
    if conn is None:
        return None
    extra = conn.extra_dejson
    if not _owned(extra, login) or float(extra.get("expires") or 0) < time.time():
        return None
    return Pending(state, str(extra.get("company_id")), str(extra.get("company_name") or ""))


def _waiting(sess: Any, login: str) -> list[Any]:
    """This login session's queued connections (several companies), oldest first, locked for the transaction."""
    from airflow.models.connection import Connection

    found = (
        conn
        for conn in sess.query(Connection).filter(Connection.conn_id.startswith(PENDING_PREFIX)).with_for_update()
        if _owned(conn.extra_dejson, login)
        and conn.extra_dejson.get("mode") == Mode.SEVERAL
        and float(conn.extra_dejson.get("kept_until") or 0) >= time.time()
    )
    return sorted(found, key=lambda conn: float(conn.extra_dejson.get("queued") or 0))


def queue(login: str) -> list[Queued]:
    """The Roger companies this login session still has to connect to e-conomic, in their turn."""
    from airflow.utils.session import create_session

    if not login:
        return []
    with create_session() as sess:
        return [
            Queued(
                str(conn.extra_dejson.get("company_id")),
                str(conn.extra_dejson.get("company_name") or ""),
                float(conn.extra_dejson.get("expires") or 0) >= time.time(),
            )
            for conn in _waiting(sess, login)
        ]


def enqueue(login: str, company_id: str, token: str, taken: dict[str, str]) -> Queued:
    """Several companies: check one Roger company live and queue it for its approval (no state yet).

    ``taken``: Roger company → the agreement that has it, inactive ones included (refused here rather than after
    an approval)."""
    forget_expired()
    if not login:
        raise OnboardingError("Not logged in: nothing was queued.")
    if company_id in taken:
        raise OnboardingError(f"Roger company {company_id} is agreement {taken[company_id]} already.")
    if any(q.company_id == company_id for q in queue(login)):
        raise OnboardingError(f"Roger company {company_id} is in the list already.")
    company = roger_company(company_id, token)
    now = time.time()
    name = str(company.get("name") or "")
    _store_connection(
        PENDING_PREFIX + _digest(secrets.token_urlsafe(32)),  # a name only: the key is not kept anywhere
        "roger",
        endpoints().roger_base_url,
        token,
        {
            "company_id": company_id,
            "company_name": name,
            "login": login,
            "mode": Mode.SEVERAL.value,
            "queued": now,
            "kept_until": now + QUEUE_TTL,
            "expires": 0,
        },
    )
    return Queued(company_id, name, False)


def take_next(login: str) -> Pending | None:
    """The oldest queued client of this login session, under a fresh one-time state (any state it had before is
    dead: its pending connection is renamed); ``None``: nobody waits."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    if not login:
        return None
    state = secrets.token_urlsafe(32)
    with create_session() as sess:
        waiting = _waiting(sess, login)
        if not waiting:
            return None
        old = waiting[0]
        extra = {**old.extra_dejson, "expires": time.time() + STATE_TTL}
        fresh = Connection(
            conn_id=PENDING_PREFIX + _digest(state),
            conn_type=old.conn_type,
            host=old.host,
            password=old.password,
            extra=json.dumps(extra),
        )
        sess.delete(old)
        sess.flush()
        sess.add(fresh)
    return Pending(state, str(extra.get("company_id")), str(extra.get("company_name") or ""))


def install_url(state: str, callback_url: str) -> str:
    """Step 2: e-conomic's installation URL, coming back to ``callback_url`` with the state."""
    redirect = f"{callback_url}?{urlencode({'state': state})}"
    query = urlencode({"appPublicToken": app_public_token(), "redirectUrl": redirect})
    return f"{approval_base_url()}{INSTALL_PATH}?{query}"


def forget_expired() -> int:
    """Drop pending connections nobody came back for (their Roger tokens with them)."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    gone = 0
    with create_session() as sess:
        for conn in sess.query(Connection).filter(Connection.conn_id.startswith(PENDING_PREFIX)):
            extra = conn.extra_dejson
            if float(extra.get("kept_until") or extra.get("expires") or 0) < time.time():
                sess.delete(conn)
                gone += 1
    return gone


def roger_companies_taken(sess: Any) -> dict[str, str]:
    """Roger company → the agreement that has it (inactive ones too: activating one again must not book twice)."""
    from sqlalchemy import select

    rows = sess.execute(select(models.Agreement.roger_company_id, models.Agreement.id))
    return {str(company): str(aid) for company, aid in rows if company}


def agreement_id_for(number: int) -> str:
    return f"agr_{number}"


def finish(sess: Any, login: str, state: str, grant: str) -> str:
    """Step 3 (the callback): take the state (one use), read /self, store the connections, create the agreement.

    Returns the new agreement's id; raises :class:`OnboardingError` with nothing attached.
    """
    taken = _take_pending(PENDING_PREFIX + _digest(state), login) if state else None
    if taken is None:
        raise OnboardingError(
            "This approval does not belong to a connection you started here (or it was used "
            "already): nothing was attached. Start again from “Add a client”."
        )
    try:
        return _attach(sess, taken, grant)
    except OnboardingError as exc:
        if taken["extra"].get("mode") != Mode.SEVERAL:
            raise
        _requeue(taken)  # a firm's client refused here (e.g. approved in the wrong agreement) waits for its turn again
        name = taken["extra"].get("company_name") or taken["extra"].get("company_id")
        raise OnboardingError(f"{exc} {name} stays on your list of clients to connect.") from None


def _requeue(taken: dict[str, Any]) -> None:
    """Put a firm's taken client back on its login's list, without a state (the one it came back with is spent)."""
    _store_connection(
        PENDING_PREFIX + _digest(secrets.token_urlsafe(32)),
        "roger",
        str(taken["host"] or ""),
        str(taken["password"]),
        {**taken["extra"], "expires": 0},
    )


def _attach(sess: Any, taken: dict[str, Any], grant: str) -> str:
    """The callback's work once its state is taken: /self read, the agreement and both connections stored."""
    if float(taken["extra"].get("expires") or 0) < time.time():
        raise OnboardingError("This connection was started too long ago: nothing was attached. Start again.")
    if not grant:
        raise OnboardingError("e-conomic sent no token back: the app was not approved. Nothing was attached.")
    ends = endpoints()
    client = EconomicClient(ends.economic_base_url, app_secret(), grant, Calls("onboarding", CHECK_POLICY))
    try:
        me = client.self_()
    except Exception as exc:
        raise OnboardingError(f"e-conomic did not accept the approval's token: {exc}") from None
    finally:
        client.close()
    number = int(me["agreementNumber"])
    company_id = str(taken["extra"]["company_id"])
    aid = agreement_id_for(number)
    cfg = Agreement(
        id=aid,
        name=str((me.get("company") or {}).get("name") or taken["extra"].get("company_name") or aid),
        roger_company_id=company_id,
        roger_token_ref=f"conn:roger_{aid}",
        economic_token_ref=f"conn:economic_{aid}",
        invoice_journal=DEFAULT_JOURNAL,
        payment_journal=DEFAULT_JOURNAL,
        economic_agreement_number=number,
    )
    from sqlalchemy import select

    rows = {r.id: r for r in sess.scalars(select(models.Agreement))}
    problems = config.conflicts({aid: cfg}, rows)
    if aid in rows:
        problems.append(f"e-conomic agreement {number} is already agreement {aid}")
    if problems:
        raise OnboardingError("Not attached: " + "; ".join(problems) + ". Remove or change that agreement first.")
    config.store(sess, [cfg])
    update_prerequisites(sess, aid, me)
    sess.flush()  # the project DB's constraints first: a refusal there leaves no connection behind
    _store_connection(f"economic_{aid}", "economic", ends.economic_base_url, grant, {})
    _store_connection(
        f"roger_{aid}",
        "roger",
        str(taken["host"] or ends.roger_base_url),
        str(taken["password"]),
        {"company_id": company_id},
    )
    return aid


# ------------------------------------------------------------------------------------------------ prerequisites


def update_prerequisites(sess: Any, agreement_id: str, me: dict[str, Any] | None, error: str | None = None) -> None:
    """Record what ``/self`` said (API access, the Indscanning add-on) in the agreement's status."""
    if me is None:
        agreement_status.write(sess, {agreement_id: {"api_access": False, "master_data_error": error}})
    else:
        found = {"api_access": True, "scanning_addon": masterdata.has_scanning({"self": me})}
        agreement_status.write(sess, {agreement_id: found})


def check_prerequisites(sess: Any, agreement_id: str) -> dict[str, Any] | None:
    """Read ``/self`` live with the agreement's own tokens and update its status; ``None``: access refused."""
    row = sess.get(models.Agreement, agreement_id)
    if row is None:
        raise OnboardingError("No such agreement")
    ends = endpoints()
    try:
        grant = resolve(row.economic_token_ref, connection_password)
        client = EconomicClient(ends.economic_base_url, app_secret(), grant, Calls(agreement_id, CHECK_POLICY))
    except (ConfigError, OnboardingError) as exc:
        update_prerequisites(sess, agreement_id, None, f"no token: {exc}")
        return None
    try:
        me = client.self_()
    except Exception as exc:
        update_prerequisites(sess, agreement_id, None, f"e-conomic refused GET /self: {exc}")
        return None
    finally:
        client.close()
    update_prerequisites(sess, agreement_id, me)
    return me


def deactivate(sess: Any, agreement_id: str) -> tuple[bool, str | None]:
    """Removing a client: the agreement inactive (its history kept), its grant connection deleted.

    Returns (whether the grant connection was deleted, its id)."""
    row = sess.get(models.Agreement, agreement_id)
    if row is None:
        raise OnboardingError("No such agreement")
    row.active = False
    conn_id = row.economic_token_ref[5:] if row.economic_token_ref.startswith("conn:") else None
    deleted = delete_connection(conn_id) if conn_id and conn_id != APP_CONN else False
    return deleted, conn_id
