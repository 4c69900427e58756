"""What keeps the "Roger → e-conomic" pages safe to open: headers, CSRF, signed messages, self-contained Data Docs.

Roger text is untrusted and ends up in every page, and Great Expectations writes
it into the Data Docs unescaped. The pages are served from Airflow's own origin,
so a script that ran there would act with the user's Airflow session. Hence:

- :class:`SecurityHeaders`: every response carries a Content-Security-Policy
  without any script source (the pages have no JavaScript), ``frame-ancestors
  'self'`` (Airflow's UI frames the page; nobody else may), ``nosniff``,
  ``Referrer-Policy: same-origin`` and ``Cache-Control: no-store`` (every page
  shows client data). Data Docs get ``sandbox`` too: an opaque origin, no
  scripts, no forms, so markup a bill smuggled into a page can neither run nor
  read the session.
- :class:`SameOriginPosts` and :func:`require_csrf_token`: a state-changing
  request must come from this site's own pages (``Origin``, or ``Referer`` when
  a browser sends no Origin) and carry :func:`csrf_token`, an HMAC of the login
  session (:func:`session_id`) with a server secret, in the form field
  :data:`CSRF_FIELD`: a token read from one login is refused in any other,
  the same user's included, and every login gets a new one. A request with
  an ``Authorization: Bearer`` header is exempt: a browser never adds one on its
  own, so it cannot be forged cross-site.
- :func:`sign_message` / :func:`shown_message`: the ``?msg=`` after a redirect
  is shown only with the server's signature, so a link cannot make the page say
  arbitrary text.
- :func:`self_contained_docs`: Data Docs pages without their CDN scripts and
  stylesheets (which would not run under the sandbox anyway, and leave
  127.0.0.1), with a small local stylesheet so they stay readable offline.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import inspect
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.core_api.security import GetUserDep, resolve_user_from_token
from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import Headers

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DATA_DOCS_PREFIX = "/data-docs/"
COOKIE_NAME = "_token"  # Airflow's session cookie (COOKIE_NAME_JWT_TOKEN)

PAGE_CSP = (
    "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'self'; base-uri 'none'"
)
DOCS_CSP = (
    "sandbox; default-src 'none'; script-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; form-action 'none'; frame-ancestors 'self'; base-uri 'none'"
)
COMMON_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "x-frame-options": "SAMEORIGIN",
    "cross-origin-resource-policy": "same-origin",
}

REFUSED_CROSS_SITE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>403 Refused</title></head><body style="font-family:sans-serif">
<h1>403 Refused</h1><p>This request did not come from the Roger → e-conomic pages of this site, so nothing was
changed. If you pressed a button on those pages, open the page again and retry.</p>
<p><a href="{home}">Open the overview</a></p></body></html>"""


# ------------------------------------------------------------------------------------------------ secrets


@functools.cache
def _key() -> bytes:
    """The server secret the CSRF tokens and messages are signed with: Airflow's, so every worker agrees."""
    from airflow.configuration import conf

    secret = conf.get("api_auth", "jwt_secret", fallback="") or conf.get("api", "secret_key", fallback="")
    if not secret:  # no shared secret configured: valid for this process only
        secret = os.urandom(32).hex()
    return hmac.new(secret.encode(), b"roger-economic-ui", hashlib.sha256).digest()


def _mac(purpose: str, text: str) -> str:
    return hmac.new(_key(), f"{purpose}\0{text}".encode(), hashlib.sha256).hexdigest()


def session_id(jwt: str | None) -> str:
    """The login session a JWT belongs to: a keyed hash of the whole token (empty without one).

    Airflow's login writes a new JWT (its own ``jti`` and ``iat``) into the ``_token`` cookie at every login, so
    two logins of one user are two sessions. The hash, not the token, is what may be kept or compared: the
    CSRF token and the onboarding's one-time state are bound to it. An auth manager that refreshes the JWT
    (``refresh_user``) starts a new session with it: a form opened before is refused once and shown again.
    """
    return _mac("session", jwt) if jwt else ""


def request_session(request: Request) -> str:
    """The :func:`session_id` of a request's browser login (the ``_token`` cookie)."""
    return session_id(request.cookies.get(COOKIE_NAME))


def csrf_token(session: str) -> str:
    """The token a form of this login session must send back (empty without a session)."""
    return _mac("csrf", session) if session else ""


def sign_message(msg: str) -> str:
    return _mac("msg", msg)


def shown_message(request: Request) -> str:
    """The ``?msg=`` of a redirect, if the server wrote it (its ``sig`` verifies), else nothing."""
    msg = request.query_params.get("msg", "")
    sig = request.query_params.get("sig", "")
    return msg if msg and hmac.compare_digest(sig, sign_message(msg)) else ""


# ------------------------------------------------------------------------------------------------ requests


def _bearer(headers: Headers) -> bool:
    """Credentials a browser never sends on its own (unlike cookies or HTTP Basic auth)."""
    return headers.get("authorization", "").lower().startswith("bearer ")


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def _own_origins(scope: Scope, headers: Headers) -> set[str]:
    """This site as the browser addresses it: the request's own host, and Airflow's ``[api] base_url``."""
    from airflow.configuration import conf

    own = {f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()}
    base = _origin_of(conf.get("api", "base_url", fallback="") or "")
    if base:
        own.add(base)
    return own


def same_origin(scope: Scope) -> bool:
    """Whether a request's ``Origin`` (or, lacking one, its ``Referer``) is this site; neither: refused."""
    headers = Headers(scope=scope)
    origin = headers.get("origin")
    sender = _origin_of(origin) if origin else _origin_of(headers.get("referer", ""))
    return sender is not None and sender in _own_origins(scope, headers)


def _route_path(scope: Scope) -> str:
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class SameOriginPosts:
    """Refuses a state-changing request sent by another site's page (cross-site, or same-site on another port)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in SAFE_METHODS
            or _bearer(Headers(scope=scope))
            or same_origin(scope)
        ):
            await self.app(scope, receive, send)
            return
        body = REFUSED_CROSS_SITE.format(home=f"{str(scope.get('root_path', '')).rstrip('/')}/").encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """The headers every response of the plugin carries (the Data Docs sandboxed on top)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if _route_path(scope).startswith(DATA_DOCS_PREFIX) else PAGE_CSP
        extra = {**COMMON_HEADERS, "content-security-policy": csp}

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in extra]
                message["headers"] = kept + [(k.encode(), v.encode()) for k, v in extra.items()]
            await send(message)

        await self.app(scope, receive, with_headers)


async def keep_form(request: Request) -> None:
    """Read a submitted form once, before any check can refuse it, so a refusal can show it again."""
    if request.method in SAFE_METHODS:
        return
    kind = request.headers.get("content-type", "")
    if kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        request.state.submitted_form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def submitted_form(request: Request) -> dict[str, str]:
    """The form :func:`keep_form` read (empty when none was sent)."""
    return dict(getattr(request.state, "submitted_form", None) or {})


CSRF_REFUSED = (
    "Nothing was changed: the form came without its security token, or from another login (a page opened "
    "before you logged in again). Send it again from this page."
)


async def require_csrf_token(request: Request, user: GetUserDep) -> None:
    """A state-changing request from a browser carries its login session's :func:`csrf_token` (``user``: only
    a logged-in request gets this far, so an ended session answers 401, not this refusal)."""
    if request.method in SAFE_METHODS or _bearer(request.headers):
        return
    sent = submitted_form(request).get(CSRF_FIELD) or request.headers.get("x-csrf-token", "")
    expected = csrf_token(request_session(request))
    if not expected or not hmac.compare_digest(sent, expected):
        raise HTTPException(403, CSRF_REFUSED)


async def current_user(request: Request) -> BaseUser | None:
    """The request's user for an error page (None when not logged in or the session expired)."""
    header = request.headers.get("authorization", "")
    token = header[7:] if _bearer(request.headers) else request.cookies.get(COOKIE_NAME)
    try:
        return await resolve_user_from_token(token)
    except HTTPException:
        return None


def allowed(dependency: Any, request: Request, user: BaseUser | None) -> bool:
    """Whether ``user`` passes a route's permission dependency (``Depends(requires_access_dag(...))``)."""
    if user is None:
        return False
    try:
        result = dependency.dependency(request, user)
    except HTTPException:
        return False
    if inspect.iscoroutine(result):  # never awaited, it would allow everything: use a direct check instead
        result.close()
        raise TypeError(f"{dependency.dependency.__qualname__} is async: check the permission directly")
    return True


def may_change_connections(user: BaseUser | None) -> bool:
    """Whether ``user`` may create and delete Airflow connections (adding a client stores its tokens in two,
    removing it deletes its grant's).

    Asked of the auth manager directly: Airflow's ``requires_access_connection`` is async."""
    if user is None:
        return False
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import ConnectionDetails

    manager = get_auth_manager()
    return all(
        manager.is_authorized_connection(method=method, details=ConnectionDetails(), user=user)
        for method in ("POST", "DELETE")
    )


def invalid_request_text(exc: RequestValidationError) -> str:
    """A bad query value in words, naming the parameter (ours) but never echoing the value sent."""
    parts = []
    for error in exc.errors():
        name = ".".join(str(p) for p in error.get("loc", ())[1:]) or "request"
        expected = "a whole number" if str(error.get("type", "")).startswith("int") else "a valid value"
        parts.append(f"{name} must be {expected}")
    return "Bad request: " + "; ".join(parts) + "."


# ------------------------------------------------------------------------------------------------ Data Docs

_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script\s*>|<script\b[^>]*/?>", re.IGNORECASE | re.DOTALL)
_REMOTE_LINK = re.compile(r"""<link\b[^>]*\bhref\s*=\s*["']?\s*(?:https?:)?//[^>]*>""", re.IGNORECASE)
_REMOTE_SRC = re.compile(r"""(\bsrc\s*=\s*)(["']?)\s*(?:https?:)?//[^"'\s>]*\2""", re.IGNORECASE)
_REMOTE_URL = re.compile(r"""url\(\s*(["']?)\s*(?:https?:)?//[^)"']*\1\s*\)""", re.IGNORECASE)
_HEAD_END = re.compile(r"</head\s*>", re.IGNORECASE)

DOCS_CSS = """<style>/* local stand-in for the CDN stylesheets Data Docs link */
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 16px;color:#1f2933}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #d9dde3;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#eef1f4}.card{border:1px solid #e4e7eb;border-radius:4px;margin:10px 0;padding:8px}
img{max-width:48px}img[src="data:,"]{display:none}a{color:#0b5cad}.fas{font-style:normal}
.fa-check-circle::before{content:"\\2714";color:#2f9e44}.fa-times::before{content:"\\2718";color:#c92a2a}
nav,.navbar,footer,.fixed-top,.fixed-bottom,.sticky-top{position:static!important;margin:8px 0}</style>"""


def self_contained_docs(html: str) -> str:
    """A Data Docs page without scripts, remote stylesheets or remote images (GX's logo), with a local stylesheet
    instead: it loads nothing from outside, also offline. Links stay links (followed only when clicked)."""
    html = _REMOTE_LINK.sub("", _SCRIPT.sub("", html))
    html = _REMOTE_URL.sub("url(data:,)", _REMOTE_SRC.sub(r"\1\2data:,\2", html))
    head = _HEAD_END.search(html)
    return html[: head.start()] + DOCS_CSS + html[head.start() :] if head else DOCS_CSS + html
