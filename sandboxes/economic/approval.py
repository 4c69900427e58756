"""e-conomic's app-approval flow, as ``../shared/economic-api/README.md`` ("Connection") describes it.

The installation URL ``/secure/api1/requestaccess.aspx?appPublicToken=<public token>[&redirectUrl=<callback>]``
shows the app's name and the agreement number with a "Tilføj app" button. Clicking it (a POST of the same page)
generates a fresh agreement grant token: with a ``redirectUrl`` the browser is sent there with ``token=<grant>``
appended; without one the page shows the token to copy. The page and the redirect are not part of the REST API,
so they need neither the app secret nor a grant token. Which agreement is "logged in" is a control setting
(``POST /_control/approval {"agreement": 700003}``), since the sandbox has no e-conomic login.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from sandboxes import world
from sandboxes.economic.state import Sandbox

PATH = "/secure/api1/requestaccess.aspx"
HTML = {"Content-Type": "text/html; charset=utf-8"}

PAGE = """<!doctype html><html lang="da"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1>{body}</body></html>"""


def _page(status: int, title: str, body: str) -> tuple[int, bytes, dict[str, str]]:
    return status, PAGE.format(title=escape(title), body=body).encode(), dict(HTML)


def _one(values: dict[str, list[str]], name: str) -> str:
    return (values.get(name) or [""])[-1]


def _redirect_target(redirect_url: str, token: str) -> str | None:
    """``redirectUrl`` with ``token`` added to its query (None: not an http(s) URL)."""
    parts = urlsplit(redirect_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query + urlencode({"token": token}), parts.fragment))


def handle(sandbox: Sandbox, method: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any, dict]:
    """GET shows the approval page; POST ("Tilføj app") grants and redirects (or shows the token)."""
    values = dict(query)
    if method == "POST":
        values.update(parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))
    elif method != "GET":
        return _page(405, "Metoden er ikke tilladt", "<p>Only GET and POST.</p>")
    public = _one(values, "appPublicToken")
    redirect_url = _one(values, "redirectUrl")
    if public != sandbox.app_public_token:
        return _page(404, "Ukendt app", "<p>Der findes ingen app med dette appPublicToken.</p>")
    if redirect_url and _redirect_target(redirect_url, "x") is None:
        return _page(400, "Ugyldig redirectUrl", "<p>redirectUrl skal være en http(s)-adresse.</p>")
    index = sandbox.approval_index
    number = world.agreement_number(index)
    if method == "GET":
        hidden = "".join(
            f'<input type="hidden" name="{n}" value="{escape(v)}">'
            for n, v in (("appPublicToken", public), ("redirectUrl", redirect_url), ("agreement", str(number)))
            if v
        )
        body_html = (
            f'<p>Appen <strong class="app-name">{escape(sandbox.app_name)}</strong> beder om adgang til '
            f'aftale <strong class="agreement-number">{number}</strong> '
            f"({escape(world.profile(index).company_name)}).</p>"
            f'<form method="post" action="{PATH}">{hidden}<button type="submit">Tilføj app</button></form>'
        )
        return _page(200, "Tilføj app", body_html)
    if _one(values, "agreement") != str(number):  # the page was shown for another agreement: show it again
        return _page(409, "Aftalen er skiftet", "<p>Log ind igen og godkend appen på ny.</p>")
    token = sandbox.grant(index)
    if redirect_url:
        return 302, None, {"Location": _redirect_target(redirect_url, token) or ""}
    shown = f'<p>Aftale {number}: kopier aftale-tokenet</p><p><code class="grant-token">{escape(token)}</code></p>'
    return _page(200, "Appen er tilføjet", shown)
