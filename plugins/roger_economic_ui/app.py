"""The "Roger → e-conomic" pages: a FastAPI app the Airflow api-server mounts under ``/roger-economic``.

Server-rendered HTML (Jinja2, autoescaped; no JavaScript). Behind Airflow's own
login: every route depends on Airflow's ``requires_access_dag`` (which resolves
the user from the ``_token`` cookie or an ``Authorization: Bearer`` JWT through
``get_user``), so permissions come from the configured auth manager:

- reading the pages needs GET on the ``roger_bills_to_economic`` DAG,
- saving a setup or re-syncing bills needs PUT (edit) on ``roger_bills_to_economic``,
- "Refresh master data" needs POST on the runs of ``roger_master_data``.

A browser that is not logged in is redirected to the auth manager's login page;
any other anonymous request gets 401. What makes the pages safe to open lives in
:mod:`roger_economic_ui.security`: the headers (a CSP without scripts, the Data
Docs sandboxed), the same-origin check and CSRF token every POST needs (each
form carries ``{{ csrf_input }}``), signed ``?msg=`` texts. Buttons are offered
only to who passes the route's permission (``can_edit``, ``can_refresh``); a
refused save shows the form again as it was typed, with the reason.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import DictLoader, Environment, select_autoescape
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from roger_economic import masterdata
from roger_economic.config import CLOSED_PERIOD_POLICIES, SUPPLIER_POLICIES
from roger_economic.db import session
from roger_economic.pipeline import DATA_DOCS
from roger_economic_ui import queries, security

BILLS_DAG = "roger_bills_to_economic"
MASTER_DATA_DAG = "roger_master_data"
PER_PAGE = 50

CanRead = Depends(requires_access_dag("GET", param_dag_id=BILLS_DAG))
CanEdit = Depends(requires_access_dag("PUT", param_dag_id=BILLS_DAG))
CanTriggerRefresh = Depends(requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=MASTER_DATA_DAG))


def trigger_master_data_refresh(agreement_id: str, user: BaseUser) -> str:
    """Queue a ``roger_master_data`` run for one agreement (Airflow's in-process trigger); returns its run id.

    The one place the UI starts a DAG run: tests replace it.
    """
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.models.dag import DagModel
    from airflow.utils.types import DagRunTriggeredByType

    run = trigger_dag(MASTER_DATA_DAG, triggered_by=DagRunTriggeredByType.UI, triggering_user_name=user.get_name(),
                      conf={"agreements": [agreement_id]})
    run_id = run.run_id if run is not None else "?"
    dag = DagModel.get_current(MASTER_DATA_DAG)
    if dag is not None and dag.is_paused:
        return f"{run_id} (the {MASTER_DATA_DAG} DAG is paused: the run waits until it is unpaused)"
    return run_id


# ------------------------------------------------------------------------------------------------ templates

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2933;background:#f7f8fa}
header{background:#017cee;color:#fff;padding:10px 20px;display:flex;gap:18px;align-items:baseline}
header a{color:#fff;text-decoration:none;font-weight:600}header .sub{opacity:.85}
main{padding:16px 20px;max-width:1400px}
h1{font-size:20px;margin:4px 0 12px}h2{font-size:16px;margin:20px 0 8px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #e4e7eb;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600;white-space:nowrap}
td.num,th.num{text-align:right}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;background:#e4e7eb}
.ok,.booked,.posted{background:#d3f5dc;color:#12632b}
.failed,.rejected,.stop{background:#fde0e0;color:#8a1c1c}
.stopped,.quarantined,.review,.warn{background:#fff1c2;color:#7a5a00}
.never,.new,.planned,.waiting,.posting{background:#e0ecfb;color:#174b8a}
.msg{padding:8px 12px;border-radius:4px;margin:8px 0;background:#e0ecfb}
.errors{padding:8px 12px;border-radius:4px;margin:8px 0;background:#fde0e0;color:#8a1c1c}
.warnbox{padding:8px 12px;border-radius:4px;margin:8px 0;background:#fff1c2}
form.inline{display:inline}
.filters{display:flex;gap:8px;align-items:center;margin:8px 0}
input,select,button{font:inherit;padding:3px 6px}
button{cursor:pointer;border:1px solid #017cee;background:#017cee;color:#fff;border-radius:4px;padding:4px 12px}
button.secondary,a.button{border:1px solid #9aa5b1;background:#fff;color:#1f2933;border-radius:4px;padding:4px 12px;
text-decoration:none}
.muted{color:#7b8794;font-size:12px}.small{font-size:12px}
ul.plain{margin:0;padding-left:16px}
.pager{margin:10px 0;display:flex;gap:10px;align-items:center}
.grid{display:grid;grid-template-columns:220px 1fr;gap:6px 12px;align-items:center;max-width:900px}
.chart{background:#fff;border:1px solid #e4e7eb;padding:8px;margin-bottom:12px}
"""

LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{% block title %}Roger → e-conomic{% endblock %}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{{ css | safe }}</style></head>
<body><header><a href="{{ base }}/">Roger → e-conomic</a>
{% if agreement_id %}<span class="sub">{{ agreement_name }}</span>
<a class="sub" href="{{ base }}/agreements/{{ agreement_id | urlencode }}">Setup</a>
<a class="sub" href="{{ base }}/agreements/{{ agreement_id | urlencode }}/bills">Bill log</a>{% endif %}
<span class="sub" style="margin-left:auto">{{ user_name }}</span></header>
<main>{% if msg %}<div class="msg">{{ msg }}</div>{% endif %}{% if login_url %}<div class="warnbox">Your session
has ended. <a href="{{ login_url }}" target="_blank" rel="noopener">Log in again</a> (a new tab), then come back here
and send the form again.</div>{% endif %}{% block body %}{% endblock %}</main></body></html>
"""

PAGER = """{% macro pager(page, pages, total, url) %}
<div class="pager">{% if page > 1 %}<a href="{{ url(page - 1) }}">« previous</a>{% endif %}
<span>page {{ page }} of {{ pages }} ({{ total }} in all)</span>
{% if page < pages %}<a href="{{ url(page + 1) }}">next »</a>{% endif %}</div>
{% endmacro %}"""

OVERVIEW = """{% extends "layout.html" %}{% from "pager.html" import pager %}
{% block body %}
<h1>Agreements</h1>
<div class="chart"><strong>Last {{ runs | length }} bills runs</strong>
<span class="muted">— bills booked <span class="badge booked">■</span> and quarantined
<span class="badge quarantined">■</span> per run, all agreements, oldest left</span>
{% if runs %}{{ chart | safe }}{% else %}<p class="muted">No bills run has reported yet.</p>{% endif %}</div>
<form class="filters" method="get" action="{{ base }}/">
<input type="search" name="q" value="{{ q }}" placeholder="name, id or agreement number" size="30">
<select name="outcome"><option value="">all outcomes</option>
{% for o in outcomes %}<option value="{{ o }}"{% if o == outcome %} selected{% endif %}>{{ o }}</option>{% endfor %}
</select><button type="submit">Filter</button>{% if q or outcome %}<a href="{{ base }}/">clear</a>{% endif %}</form>
<table><thead><tr><th>Agreement</th><th>Last run</th><th>Outcome</th>
<th class="num" title="entries posted to e-conomic (ledger)">Booked</th>
<th class="num" title="bills with an open stop-rule quarantine">Quarantined</th>
<th class="num" title="entries e-conomic rejected, or that wait for an accountant">Failed</th>
<th class="num">Mapping gaps</th><th>Scanning add-on</th><th>API</th><th></th></tr></thead><tbody>
{% for r in rows %}<tr>
<td><a href="{{ base }}/agreements/{{ r.id | urlencode }}">{{ r.name }}</a><div class="muted">{{ r.id }}
{% if not r.active %} · inactive{% endif %}</div></td>
<td>{% if r.last_run_id %}{{ r.last_run_at | dt }}<div class="muted">{{ r.last_run_id }}</div>
{% if r.data_docs %}<a href="{{ base }}/data-docs/{{ r.data_docs }}">validation (Data Docs)</a>{% endif %}
{% else %}<span class="muted">never</span>{% endif %}</td>
<td><span class="badge {{ r.last_outcome }}" title="{{ r.last_message or '' }}">{{ r.last_outcome }}</span></td>
<td class="num">{{ r.booked }}</td>
<td class="num">{% if r.quarantined %}<a href="{{ base }}/agreements/{{ r.id | urlencode }}/bills?state=quarantined">
{{ r.quarantined }}</a>{% else %}0{% endif %}</td>
<td class="num">{{ r.failed }}</td>
<td class="num">{% if r.gaps %}<a href="{{ base }}/agreements/{{ r.id | urlencode }}#gaps">{{ r.gaps }}</a>
{% else %}0{% endif %}</td>
<td>{{ r.scanning_addon | yesno }}</td>
<td>{% if r.api_access is none %}<span class="muted">unknown</span>{% elif r.api_access %}
<span class="badge ok">ok</span>{% else %}<span class="badge failed" title="{{ r.master_data_error or '' }}">no access
</span>{% endif %}</td>
<td><a href="{{ base }}/agreements/{{ r.id | urlencode }}/bills">bill log</a></td></tr>
{% else %}<tr><td colspan="10" class="muted">No agreement matches.</td></tr>{% endfor %}
</tbody></table>
{{ pager(page, pages, total, page_url) }}
{% endblock %}"""

SETUP = """{% extends "layout.html" %}
{% macro account_select(name, selected, allow_none=True) %}
<select name="{{ name }}">{% if allow_none %}<option value="">— not mapped —</option>{% endif %}
{% for a in accounts %}<option value="{{ a.accountNumber }}"{% if a.accountNumber | string == selected %} selected
{% endif %}>{{ a.accountNumber }} {{ a.name }}{% if a.vatAccount %} ({{ a.vatAccount.vatCode }}){% endif %}</option>
{% endfor %}</select>{% if issue(selected) %}<span class="badge failed">was {{ selected }}: {{ issue(selected) }}
</span>{% endif %}
{% endmacro %}
{% block body %}
<h1>Setup of {{ agreement.name }}</h1>
{% if errors %}<div class="errors"><strong>Not saved:</strong><ul class="plain">{% for e in errors %}<li>{{ e }}</li>
{% endfor %}</ul></div>{% endif %}
{% if not has_master_data %}<div class="warnbox">No master data stored for this agreement yet:
refresh it before mapping.</div>{% endif %}
<p class="muted">Master data from {{ master_data_at | dt }}{% if master_data_error %} ·
<span class="badge failed">{{ master_data_error }}</span>{% endif %}</p>
{% if can_refresh %}<form method="post" action="{{ base }}/agreements/{{ agreement.id | urlencode }}/refresh"
 class="inline">{{ csrf_input }}<button type="submit" class="secondary">Refresh master data</button></form>
<span class="muted">starts the {{ master_dag }} DAG for this agreement only</span>{% endif %}

<h2 id="gaps">Mapping gaps ({{ gaps | length }})</h2>
{% if gaps %}<table><thead><tr><th>Kind</th><th>Item</th><th>Problem</th><th>Stops</th></tr></thead><tbody>
{% for g in gaps %}<tr><td>{{ g.kind }}</td><td>{{ g.item }}</td><td>{{ g.message }}</td>
<td><span class="badge {{ 'failed' if g.stops == 'agreement' else 'stopped' }}">{{ g.stops }}</span></td></tr>
{% endfor %}</tbody></table>{% else %}<p class="muted">None: every category and payment method can be booked.</p>
{% endif %}

<form method="post" action="{{ base }}/agreements/{{ agreement.id | urlencode }}">{{ csrf_input }}
<h2>Journals and policies</h2><div class="grid">
<label>Supplier invoice journal</label><select name="invoice_journal"><option value="">— choose —</option>
{% for j in journals %}<option value="{{ j.journalNumber }}"{% if j.journalNumber | string == sel.invoice_journal %}
 selected{% endif %}>{{ j.journalNumber }} {{ j.name }}{% if j.settings and j.settings.entryTypeRestrictedTo %}
 ({{ j.settings.entryTypeRestrictedTo }} only){% endif %}</option>{% endfor %}</select>
<label>Supplier payment journal</label><select name="payment_journal"><option value="">— choose —</option>
{% for j in journals %}<option value="{{ j.journalNumber }}"{% if j.journalNumber | string == sel.payment_journal %}
 selected{% endif %}>{{ j.journalNumber }} {{ j.name }}{% if j.settings and j.settings.entryTypeRestrictedTo %}
 ({{ j.settings.entryTypeRestrictedTo }} only){% endif %}</option>{% endfor %}</select>
<label>Default account</label><div>{{ account_select("default_account", sel.default_account) }}
<span class="muted">for categories without a mapping</span></div>
<label>Supplier policy</label><select name="supplier_policy">{% for p in supplier_policies %}
<option value="{{ p }}"{% if p == sel.supplier_policy %} selected{% endif %}>{{ p }}</option>{% endfor %}</select>
<label>Supplier group / payment terms</label><div>
<input name="supplier_group" value="{{ sel.supplier_group }}" size="5" inputmode="numeric">
<input name="payment_terms" value="{{ sel.payment_terms }}" size="5" inputmode="numeric">
<span class="muted">needed by policy "create"</span></div>
<label>Default supplier</label><div><select name="default_supplier"><option value="">— none —</option>
{% for s in suppliers %}<option value="{{ s.supplierNumber }}"{% if s.supplierNumber | string == sel.default_supplier %}
 selected{% endif %}>{{ s.supplierNumber }} {{ s.name }}</option>{% endfor %}</select>
<span class="muted">needed by policy "default"</span></div>
<label>Closed-period policy</label><select name="closed_period_policy">{% for p in closed_policies %}
<option value="{{ p }}"{% if p == sel.closed_period_policy %} selected{% endif %}>{{ p }}</option>{% endfor %}</select>
<label>Book without attachment</label><div><input type="checkbox" name="book_without_attachment" value="1"
{% if sel.book_without_attachment %} checked{% endif %}></div>
</div>

<h2>Roger payment methods → account</h2>
<table><thead><tr><th>Payment method</th><th>Account</th></tr></thead><tbody>
{% for m in methods %}<tr><td>{{ m.name }}
<span class="muted">{{ m.id }}{% if m.kind %} · {{ m.kind }}{% endif %}</span></td>
<td>{{ account_select("pm_account__" ~ m.id, sel.get("pm_account__" ~ m.id, "")) }}</td></tr>
{% else %}<tr><td colspan="2" class="muted">No payment methods in Roger's master data.</td></tr>{% endfor %}
</tbody></table>

<h2>Roger categories → account and VAT code</h2>
<table><thead><tr><th>Category</th><th>Account</th><th>VAT code</th></tr></thead><tbody>
{% for c in categories %}<tr><td>{{ c.name }} <span class="muted">{{ c.id }}</span></td>
<td>{{ account_select("cat_account__" ~ c.id, sel.get("cat_account__" ~ c.id, "")) }}</td>
<td><select name="cat_vat__{{ c.id }}"><option value="">— account's own —</option>
{% for v in vat_codes %}<option value="{{ v.vatCode }}"{% if v.vatCode == sel.get("cat_vat__" ~ c.id, "") %} selected
{% endif %}>{{ v.vatCode }} {{ v.name }}</option>{% endfor %}</select></td></tr>
{% else %}<tr><td colspan="3" class="muted">No categories in Roger's master data.</td></tr>{% endfor %}
</tbody></table>
{% if can_edit %}<p><button type="submit" name="action" value="save">Save</button>
<a class="button" href="{{ base }}/">Cancel</a> <span class="muted">Cancel discards the changes on this page.</span></p>
{% else %}<p class="muted">Read only: you may not change this setup.</p>{% endif %}
</form>
{% endblock %}"""

BILLS = """{% extends "layout.html" %}{% from "pager.html" import pager %}
{% block body %}
<h1>Bill log of {{ agreement.name }}</h1>
<p class="muted">Re-sync sets a bill's staged state back to <em>new</em>, so the next bills run judges it again
(for example after a mapping was fixed). The posting ledger is not touched: an entry that is already booked keeps
its ledger row and is never booked twice; correct a wrong booked entry in e-conomic.</p>
{% if can_edit %}<form method="post" class="inline"
 action="{{ base }}/agreements/{{ agreement.id | urlencode }}/bills/resync-quarantined">{{ csrf_input }}
<button type="submit"{% if not states.get('quarantined') %} disabled{% endif %}>Re-sync all quarantined
 ({{ states.get('quarantined', 0) }})</button></form>{% endif %}
<form class="filters" method="get" action="{{ base }}/agreements/{{ agreement.id | urlencode }}/bills">
<input type="search" name="q" value="{{ q }}" placeholder="bill id" size="24">
<select name="state"><option value="">all states</option>{% for s in all_states %}
<option value="{{ s }}"{% if s == state %} selected{% endif %}>{{ s }} ({{ states.get(s, 0) }})</option>{% endfor %}
</select><button type="submit">Filter</button></form>
<table><thead><tr><th>Bill</th><th>Vendor / invoice</th><th class="num">Amount</th><th>State</th>
<th>Postings (kind · status · journal · year · voucher)</th><th>Open quarantine</th><th>Review</th><th></th></tr>
</thead><tbody>
{% for b in rows %}<tr id="bill-{{ b.bill_id }}">
<td>{{ b.bill_id }}<div class="muted">v{{ b.version }} · {{ b.status or '' }} · {{ b.category or '' }}</div></td>
<td>{{ b.vendor or '' }}<div class="muted">{{ b.invoice_number or '' }}</div></td>
<td class="num">{{ b.amount or '' }} {{ b.currency or '' }}</td>
<td><span class="badge {{ b.state }}">{{ b.state }}</span></td>
<td>{% if b.postings %}<ul class="plain">{% for p in b.postings %}<li>{{ p.entry_kind }} ·
<span class="badge {{ p.status }}">{{ p.status }}</span> · journal {{ p.journal_number }} · {{ p.accounting_year }}
· {{ p.voucher_number if p.voucher_number is not none else '—' }}{% if p.attachment not in ('none', '') %}
<span class="muted">attachment {{ p.attachment }}</span>{% endif %}{% if p.error %}
<div class="muted">{{ p.error }}</div>{% endif %}</li>{% endfor %}</ul>{% else %}<span class="muted">none</span>
{% endif %}</td>
<td>{% if b.quarantine %}<ul class="plain">{% for q in b.quarantine %}<li><span class="badge {{ q.severity }}">
{{ q.severity }}</span> {{ q.rule }}{% if q.value %} (<code>{{ q.value }}</code>){% endif %}: {{ q.message }}</li>
{% endfor %}</ul>{% else %}<span class="muted">none</span>{% endif %}</td>
<td>{% if b.reviews %}<ul class="plain">{% for r in b.reviews %}<li>{{ r.entry_kind }} v{{ r.bill_version }}:
{{ r.message }}</li>{% endfor %}</ul>{% else %}<span class="muted">none</span>{% endif %}</td>
<td>{% if b.state == 'new' %}<span class="muted">queued</span>{% elif can_edit %}<form method="post" class="inline"
 action="{{ base }}/agreements/{{ agreement.id | urlencode }}/bills/{{ b.bill_id | urlencode }}/resync">{{ csrf_input }}
<button type="submit" class="secondary" title="set back to new: the next run re-judges it">Re-sync</button></form>
{% endif %}</td></tr>
{% else %}<tr><td colspan="8" class="muted">No bills.</td></tr>{% endfor %}
</tbody></table>
{{ pager(page, pages, total, page_url) }}
{% endblock %}"""

ERROR = """{% extends "layout.html" %}{% block body %}<h1>{{ code }}</h1><p>{{ detail }}</p>
<p><a href="{{ base }}/">Back to the overview</a></p>{% endblock %}"""


def _dt(value: Any) -> str:
    if value is None:
        return "—"
    try:
        return value.strftime("%Y-%m-%d %H:%M")
    except AttributeError:
        return str(value)


def _yesno(value: Any) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


templates = Environment(
    loader=DictLoader({"layout.html": LAYOUT, "pager.html": PAGER, "overview.html": OVERVIEW, "setup.html": SETUP,
                       "bills.html": BILLS, "error.html": ERROR}),
    autoescape=select_autoescape(default=True, default_for_string=True),
)
templates.filters["dt"] = _dt
templates.filters["yesno"] = _yesno


def _base(request: Request) -> str:
    """The app's own URL prefix (Airflow's base_url path + the mount point)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    user = context.pop("user", None)
    # without a user (an ended session), a form shown again keeps the token it was sent with
    token = security.csrf_token(user) or security.submitted_form(request).get(security.CSRF_FIELD, "")
    ended = user is None and status_code == 401  # who it was is unknown until logged in again: the form offers
    # sending it again (the route checks the permission then)
    html = templates.get_template(name).render(
        css=CSS, base=_base(request), msg=security.shown_message(request),
        user_name=user.get_name() if user is not None else "",
        csrf_input=Markup('<input type="hidden" name="{}" value="{}">').format(security.CSRF_FIELD, token),
        can_edit=ended or security.allowed(CanEdit, request, user),
        can_refresh=ended or security.allowed(CanTriggerRefresh, request, user),
        login_url=_login_url(request) if status_code == 401 else "", **context)
    return HTMLResponse(html, status_code=status_code)


def _login_url(request: Request) -> str:
    """Airflow's login page, coming back to the page the refused request was sent from."""
    from airflow.api_fastapi.app import get_auth_manager

    back = request.headers.get("referer", "") if request.method != "GET" else str(request.url)
    return get_auth_manager().get_url_login(next_url=back or f"{_base(request)}/")


def bar_chart(runs: list[dict[str, Any]], width: int = 900, height: int = 170) -> str:
    """Inline SVG: two bars per run (booked, quarantined); every number is escaped by being an int."""
    from html import escape

    left, bottom, top = 36, 18, 8
    peak = max([1, *(max(r["booked"], r["quarantined"]) for r in runs)])
    slot = (width - left) / max(len(runs), 1)
    bar = max(2.0, slot * 0.38)
    plot = height - bottom - top
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="bills booked and quarantined per run"'
             f' width="100%" viewBox="0 0 {width} {height}" preserveAspectRatio="none" class="runs-chart">',
             f'<line x1="{left}" y1="{top + plot}" x2="{width}" y2="{top + plot}" stroke="#9aa5b1"/>',
             f'<text x="{left - 4}" y="{top + 10}" font-size="11" text-anchor="end">{peak}</text>',
             f'<text x="{left - 4}" y="{top + plot}" font-size="11" text-anchor="end">0</text>']
    for i, run in enumerate(runs):
        x = left + i * slot + slot * 0.1
        label = escape(f"{run['run_id']} ({_dt(run['finished_at'])}): {run['booked']} booked, "
                       f"{run['quarantined']} quarantined" + (f", {run['failed']} failed" if run["failed"] else ""))
        for offset, value, colour, kind in ((0, run["booked"], "#2f9e44", "booked"),
                                            (bar, run["quarantined"], "#e0a800", "quarantined")):
            h = round(plot * value / peak, 1)
            parts.append(f'<rect class="bar-{kind}" x="{x + offset:.1f}" y="{top + plot - h:.1f}" width="{bar:.1f}"'
                         f' height="{h}" fill="{colour}"><title>{label}</title></rect>')
        if run["failed"]:
            parts.append(f'<circle cx="{x + bar:.1f}" cy="{top + plot + 8}" r="3" fill="#c92a2a">'
                         f'<title>{label}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def _page_url(request: Request, path: str, **params: Any) -> Callable[[int], str]:
    kept = {k: v for k, v in params.items() if v}

    def url(page: int) -> str:
        return f"{_base(request)}{path}?{urlencode({**kept, 'page': page})}"

    return url


def _redirect(request: Request, path: str, msg: str) -> RedirectResponse:
    query = urlencode({"msg": msg, "sig": security.sign_message(msg)})
    return RedirectResponse(f"{_base(request)}{path}?{query}", status_code=303)


# ------------------------------------------------------------------------------------------------ app

app = FastAPI(title="Roger → e-conomic", docs_url=None, redoc_url=None, openapi_url=None,
              dependencies=[Depends(security.keep_form), Depends(security.require_csrf_token)])
app.add_middleware(security.SameOriginPosts)
app.add_middleware(security.SecurityHeaders)  # outermost: a refused request carries the headers too


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """Send a browser that is not logged in to Airflow's login page; otherwise a small error page."""
    wants_html = "text/html" in request.headers.get("accept", "")
    if exc.status_code == 401 and request.method == "GET" and wants_html:
        from airflow.api_fastapi.app import get_auth_manager

        return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
    if not wants_html:
        return Response(content=str(exc.detail), status_code=exc.status_code, media_type="text/plain",
                        headers=getattr(exc, "headers", None))
    user = await security.current_user(request)
    if request.method == "POST" and exc.status_code in (401, 403):
        kept = await _setup_form_kept(request, user, exc)
        if kept is not None:
            return kept
    return render(request, "error.html", status_code=exc.status_code, user=user, code=exc.status_code,
                  detail=_refusal(request, exc))


SESSION_ENDED = "Nothing was changed: you are not logged in (the session ended or expired)."
NOT_ALLOWED = "Nothing was changed: your login may not do this (it needs that permission on the {dag} DAG)."


def _refusal(request: Request, exc: StarletteHTTPException) -> str:
    """Why a request was refused, in words (Airflow's own 403 says only "Forbidden")."""
    if exc.status_code == 401:
        return SESSION_ENDED
    if exc.status_code == 403 and request.method not in security.SAFE_METHODS and exc.detail != security.CSRF_REFUSED:
        dag = MASTER_DATA_DAG if request.url.path.endswith("/refresh") else BILLS_DAG
        return NOT_ALLOWED.format(dag=dag)
    return str(exc.detail)


async def _setup_form_kept(request: Request, user: BaseUser | None, exc: StarletteHTTPException) -> Response | None:
    """A refused save of the setup (session ended, no permission, stale token): the form as typed, and why."""
    agreement_id = request.path_params.get("agreement_id")
    if agreement_id is None or request.url.path.rstrip("/") != f"{_base(request)}/agreements/{agreement_id}":
        return None

    def load() -> queries.Setup | None:
        with session() as sess:
            return queries.load_setup(sess, agreement_id)

    setup = await run_in_threadpool(load)
    if setup is None:
        return None
    form = security.submitted_form(request)
    sel: dict[str, Any] = {**form, "book_without_attachment": bool(form.get("book_without_attachment"))}
    return _render_setup(request, user, setup, sel, [_refusal(request, exc)], status_code=exc.status_code)


@app.exception_handler(RequestValidationError)
async def _bad_request(request: Request, exc: RequestValidationError) -> Response:
    """A bad query value (``?page=abc``) answers a page that says which, not FastAPI's JSON."""
    user = await security.current_user(request)
    return render(request, "error.html", status_code=400, user=user, code=400,
                  detail=security.invalid_request_text(exc))


def _agreement_or_404(setup: queries.Setup | None) -> queries.Setup:
    if setup is None:
        raise HTTPException(404, "No such agreement")
    return setup


@app.get("/", response_class=HTMLResponse, dependencies=[CanRead])
def overview(request: Request, user: GetUserDep, q: str = "", outcome: str = "", page: int = 1) -> HTMLResponse:
    outcome = outcome if outcome in queries.OUTCOMES else ""
    with session() as sess:
        rows, total = queries.overview(sess, q, outcome, page, PER_PAGE)
        runs = queries.run_chart(sess, 30)
    pages = max(1, -(-total // PER_PAGE))
    return render(request, "overview.html", user=user, rows=rows, total=total, page=max(1, page), pages=pages,
                  q=q, outcome=outcome, outcomes=queries.OUTCOMES, runs=runs, chart=bar_chart(runs) if runs else "",
                  page_url=_page_url(request, "/", q=q, outcome=outcome))


def _setup_selection(setup: queries.Setup) -> dict[str, Any]:
    a = setup.agreement
    sel: dict[str, Any] = {
        key: "" if getattr(a, key) is None else str(getattr(a, key))
        for key in ("invoice_journal", "payment_journal", "default_account", "supplier_policy", "supplier_group",
                    "payment_terms", "default_supplier", "closed_period_policy")
    }
    sel["book_without_attachment"] = bool(a.book_without_attachment)
    for cid, (account, vat) in setup.categories.items():
        sel[f"cat_account__{cid}"], sel[f"cat_vat__{cid}"] = str(account), vat or ""
    for mid, account in setup.methods.items():
        sel[f"pm_account__{mid}"] = str(account)
    return sel


def _render_setup(request: Request, user: BaseUser, setup: queries.Setup, sel: dict[str, Any],
                  errors: list[str] | None = None, status_code: int = 200) -> HTMLResponse:
    accounts = {a["accountNumber"]: a for a in setup.snapshots.get("accounts") or [] if "accountNumber" in a}

    def issue(value: Any) -> str | None:
        try:
            number = int(value)
        except (TypeError, ValueError):
            return None
        return masterdata.account_problem(accounts, number)

    status = setup.status
    return render(
        request, "setup.html", status_code=status_code, user=user, agreement=setup.agreement,
        agreement_id=setup.agreement.id, agreement_name=setup.agreement.name, errors=errors or [],
        has_master_data=bool(setup.snapshots), master_data_at=status.master_data_at if status else None,
        master_data_error=status.master_data_error if status else None, gaps=queries.current_gaps(setup),
        journals=setup.journals, accounts=setup.accounts, vat_codes=setup.vat_codes, suppliers=setup.suppliers,
        categories=setup.roger_categories, methods=setup.roger_methods, sel=defaultdict(str, sel), issue=issue,
        supplier_policies=SUPPLIER_POLICIES, closed_policies=CLOSED_PERIOD_POLICIES, master_dag=MASTER_DATA_DAG)


@app.get("/agreements/{agreement_id}", response_class=HTMLResponse, dependencies=[CanRead])
def setup_page(request: Request, agreement_id: str, user: GetUserDep) -> HTMLResponse:
    with session() as sess:
        setup = _agreement_or_404(queries.load_setup(sess, agreement_id))
    return _render_setup(request, user, setup, _setup_selection(setup))


def _save_setup(agreement_id: str, form: dict[str, str]) -> tuple[queries.Setup, queries.SetupForm, list[Any]]:
    with session() as sess:
        setup = _agreement_or_404(queries.load_setup(sess, agreement_id))
        parsed = queries.parse_setup_form(setup, form)
        gaps = [] if parsed.errors else queries.save_setup(sess, setup, parsed)
    return setup, parsed, gaps


@app.post("/agreements/{agreement_id}", response_class=HTMLResponse, dependencies=[CanEdit])
async def save_setup(request: Request, agreement_id: str, user: GetUserDep) -> Response:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    setup, parsed, gaps = await run_in_threadpool(_save_setup, agreement_id, form)
    if parsed.errors:
        sel = dict(form)
        sel["book_without_attachment"] = parsed.values.get("book_without_attachment", False)
        return _render_setup(request, user, setup, sel, parsed.errors, status_code=400)
    msg = "Saved." + (f" {len(gaps)} mapping gap(s) remain." if gaps else " No mapping gaps.")
    return _redirect(request, f"/agreements/{agreement_id}", msg)


@app.post("/agreements/{agreement_id}/refresh", dependencies=[CanTriggerRefresh])
async def refresh_master_data(request: Request, agreement_id: str, user: GetUserDep) -> Response:
    def exists() -> bool:
        with session() as sess:
            return queries.load_setup(sess, agreement_id) is not None

    if not await run_in_threadpool(exists):
        raise HTTPException(404, "No such agreement")
    try:
        run_id = await run_in_threadpool(trigger_master_data_refresh, agreement_id, user)
    except Exception as exc:  # DAG not parsed yet, run id clash, …: tell the user, keep the page
        msg = f"Could not start {MASTER_DATA_DAG}: {exc}"
    else:
        msg = f"Master data refresh queued: {MASTER_DATA_DAG} run {run_id}. Reload this page when it has finished."
    return _redirect(request, f"/agreements/{agreement_id}", msg)


@app.get("/data-docs/{path:path}", dependencies=[CanRead])
def data_docs(path: str) -> Response:
    """Great Expectations Data Docs of the runs' validations (files under var/data_docs)."""
    root = DATA_DOCS.resolve()
    target = (root / path).resolve()
    if not target.is_file() or not target.is_relative_to(root):
        raise HTTPException(404, "No such Data Docs page")
    if target.suffix.lower() in (".html", ".htm"):  # served sandboxed (security.SecurityHeaders) and self-contained
        return HTMLResponse(security.self_contained_docs(target.read_text(encoding="utf-8", errors="replace")))
    return FileResponse(target)


@app.get("/agreements/{agreement_id}/bills", response_class=HTMLResponse, dependencies=[CanRead])
def bills_page(request: Request, agreement_id: str, user: GetUserDep, state: str = "", q: str = "",
               page: int = 1) -> HTMLResponse:
    state = state if state in queries.BILL_STATES else ""
    with session() as sess:
        setup = _agreement_or_404(queries.load_setup(sess, agreement_id))
        rows, total, states = queries.bill_log(sess, agreement_id, state, q, page, PER_PAGE)
    pages = max(1, -(-total // PER_PAGE))
    return render(request, "bills.html", user=user, agreement=setup.agreement, agreement_id=agreement_id,
                  agreement_name=setup.agreement.name, rows=rows, total=total, page=max(1, page), pages=pages,
                  states=states, state=state, q=q, all_states=queries.BILL_STATES,
                  page_url=_page_url(request, f"/agreements/{agreement_id}/bills", state=state, q=q))


@app.post("/agreements/{agreement_id}/bills/resync-quarantined", dependencies=[CanEdit])
def resync_quarantined(request: Request, agreement_id: str) -> Response:
    with session() as sess:
        _agreement_or_404(queries.load_setup(sess, agreement_id))
        count = queries.resync_quarantined(sess, agreement_id)
    return _redirect(request, f"/agreements/{agreement_id}/bills",
                     f"{count} quarantined bill(s) set back to new: the next bills run re-judges them.")


@app.post("/agreements/{agreement_id}/bills/{bill_id}/resync", dependencies=[CanEdit])
def resync_bill(request: Request, agreement_id: str, bill_id: str) -> Response:
    with session() as sess:
        if not queries.resync_bill(sess, agreement_id, bill_id):
            raise HTTPException(404, "No such bill")
    return _redirect(request, f"/agreements/{agreement_id}/bills",
                     f"Bill {bill_id} set back to new: the next bills run re-judges it (its ledger rows stay).")

