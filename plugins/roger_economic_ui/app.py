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

import contextlib
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_connection, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import DictLoader, Environment, select_autoescape
from markupsafe import Markup
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from roger_economic import config, csv_import, masterdata
from roger_economic.db import models, session
from roger_economic.errors import ConfigError
from roger_economic.model import CLOSED_PERIOD_POLICIES, SETUP_FIELDS, SUPPLIER_POLICIES
from roger_economic.states import BillState
from roger_economic.steps.validate import DATA_DOCS
from roger_economic_ui import fetching, onboarding, queries, security

BILLS_DAG = "roger_bills_to_economic"
MASTER_DATA_DAG = "roger_master_data"
PER_PAGE = 50

CanRead = Depends(requires_access_dag("GET", param_dag_id=BILLS_DAG))
CanEdit = Depends(requires_access_dag("PUT", param_dag_id=BILLS_DAG))
CanTriggerRefresh = Depends(requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=MASTER_DATA_DAG))
# adding a client stores its tokens as Airflow connections: that needs the right to create connections too
CanAddConnection = Depends(requires_access_connection("POST"))


def trigger_master_data_refresh(agreement_id: str, user: BaseUser) -> str:
    """Queue a ``roger_master_data`` run for one agreement (Airflow's in-process trigger); returns its run id.

    The one place the UI starts a DAG run: tests replace it. Whether anything picks the run up is the progress
    page's to say (:func:`roger_economic_ui.fetching.dag_run_progress`)."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.types import DagRunTriggeredByType

    run = trigger_dag(
        MASTER_DATA_DAG,
        triggered_by=DagRunTriggeredByType.UI,
        triggering_user_name=user.get_name(),
        conf={"agreements": [agreement_id]},
    )
    if run is None:
        raise RuntimeError("Airflow created no run")
    return str(run.run_id)


# ------------------------------------------------------------------------------------------------ templates

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2933;background:#f7f8fa;
overflow-wrap:anywhere}
header{background:#017cee;color:#fff;padding:10px 20px;display:flex;flex-wrap:wrap;gap:6px 18px;align-items:baseline}
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
.stopped,.quarantined,.review,.held,.warn{background:#fff1c2;color:#7a5a00}
.never,.new,.planned,.waiting,.posting{background:#e0ecfb;color:#174b8a}
.suggested{background:#efe3fb;color:#5b2a86}
.msg{padding:8px 12px;border-radius:4px;margin:8px 0;background:#e0ecfb}
.errors{padding:8px 12px;border-radius:4px;margin:8px 0;background:#fde0e0;color:#8a1c1c}
.warnbox{padding:8px 12px;border-radius:4px;margin:8px 0;background:#fff1c2}
form.inline{display:inline}
.filters{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:8px 0}
input,select,button{font:inherit;padding:3px 6px;max-width:100%}
.scroll{overflow-x:auto;max-width:100%}.scroll table{min-width:640px}.scroll td,.scroll th{overflow-wrap:normal}
.badge,td.num{white-space:nowrap}.scroll td:first-child{min-width:170px}
.reason{color:#8a1c1c;font-size:12px}.explain{color:#52606d;font-size:12px;min-width:150px;max-width:220px}
.chart-dates{display:flex;justify-content:space-between;font-size:12px;color:#52606d}
button{cursor:pointer;border:1px solid #017cee;background:#017cee;color:#fff;border-radius:4px;padding:4px 12px}
button.secondary,a.button{border:1px solid #9aa5b1;background:#fff;color:#1f2933;border-radius:4px;padding:4px 12px;
text-decoration:none}
.muted{color:#7b8794;font-size:12px}.small{font-size:12px}
ul.plain{margin:0;padding-left:16px}
.pager{margin:10px 0;display:flex;gap:10px;align-items:center}
.grid{display:grid;grid-template-columns:220px minmax(0,1fr);gap:6px 12px;align-items:center;max-width:900px}
.chart{background:#fff;border:1px solid #e4e7eb;padding:8px;margin-bottom:12px}
.spinner{display:inline-block;width:14px;height:14px;border:3px solid #c5d3e2;border-top-color:#017cee;
border-radius:50%;animation:spin .9s linear infinite;vertical-align:-3px;margin-right:6px}
@keyframes spin{to{transform:rotate(360deg)}}
ol.stages{display:flex;flex-wrap:wrap;gap:6px;list-style:none;padding:0;margin:10px 0}
ol.stages li{padding:2px 10px;border-radius:9px;background:#eef1f4;color:#7b8794}
ol.stages li.now{background:#017cee;color:#fff;font-weight:600}ol.stages li.past{background:#d3f5dc;color:#12632b}
.top-right{float:right;margin-left:12px}
@media (max-width:640px){main{padding:10px}header{padding:8px 10px}.grid{grid-template-columns:minmax(0,1fr)}
.grid label{font-weight:600;margin-top:6px}}
"""

LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{% block title %}Roger → e-conomic{% endblock %}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{{ css | safe }}</style>
{% block head %}{% endblock %}</head>
<body><header><a href="{{ base }}/">Roger → e-conomic</a>
{% if agreement_id %}<span class="sub">{{ agreement_name }}</span>
<a class="sub" href="{{ base }}/agreements/{{ agreement_id | urlencode }}">Setup</a>
<a class="sub" href="{{ base }}/agreements/{{ agreement_id | urlencode }}/bills">Bill log</a>{% endif %}
{% if can_add_client %}<a class="sub" href="{{ base }}/clients/new">Add a client</a>{% endif %}
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
<h1>Agreements</h1>{% if can_edit %}<p><a href="{{ base }}/import">Add clients from a CSV file</a></p>{% endif %}
<div class="chart"><strong>Last {{ runs | length }} bills runs</strong>
<span class="muted">— per run, all agreements, oldest left: <span class="badge booked">■</span> entries booked
(supplier invoices + payments posted to e-conomic), <span class="badge quarantined">■</span> bills quarantined,
<span class="badge failed">●</span> a phase that did not end ok</span>
{% if runs %}{{ chart | safe }}<div class="chart-dates"><span>{{ runs[0].finished_at | dt }}</span>
<span>{{ runs[-1].finished_at | dt }}</span></div>{% else %}<p class="muted">No bills run has reported yet.</p>
{% endif %}</div>
<form class="filters" method="get" action="{{ base }}/">
<input type="search" name="q" value="{{ q }}" placeholder="name, id or agreement number" size="30">
<select name="outcome"><option value="">all outcomes</option>
{% for o in outcomes %}<option value="{{ o }}"{% if o == outcome %} selected{% endif %}>{{ o }}</option>{% endfor %}
</select><button type="submit">Filter</button>{% if q or outcome %}<a href="{{ base }}/">clear</a>{% endif %}</form>
<p class="muted">Agreements that need attention come first, with the reason.</p>
<div class="scroll"><table><thead><tr><th>Agreement</th><th>Last run</th><th>Outcome</th>
<th class="num" title="entries posted to e-conomic (ledger)">Entries booked</th>
<th class="num" title="bills with an open stop-rule quarantine">Bills quarantined</th>
<th class="num" title="entries e-conomic rejected, held back with a rejected invoice, or waiting for an accountant">
Entries failed</th>
<th class="num">Mapping gaps</th><th>Scanning add-on</th><th>API</th><th></th></tr></thead><tbody>
{% for r in rows %}<tr class="{{ 'attention' if r.attention else 'fine' }}">
<td><a href="{{ base }}/agreements/{{ r.id | urlencode }}">{{ r.name }}</a><div class="muted">{{ r.id }}
{% if not r.active %} · inactive{% endif %}</div>{% if r.attention %}<div class="reason">Needs attention:
{{ r.attention | join("; ") }}</div>{% endif %}</td>
<td>{% if r.last_run_id %}{{ r.last_run_at | dt }}<div class="muted">{{ r.last_run_id }}</div>
{% else %}<span class="muted">never</span>{% endif %}
{% if r.data_docs %}<div><a href="{{ base }}/data-docs/{{ r.data_docs }}">validation of {{ r.data_docs_at | dt }}
(Data Docs)</a></div>{% endif %}</td>
<td><span class="badge {{ r.last_outcome }}" title="{{ r.last_message or '' }}">{{ r.last_outcome }}</span></td>
<td class="num">{{ r.booked }}</td>
<td class="num">{% if r.quarantined %}<a href="{{ base }}/agreements/{{ r.id | urlencode }}/bills?state=quarantined">
{{ r.quarantined }}</a>{% else %}0{% endif %}</td>
<td class="num">{{ r.failed }}</td>
<td class="num">{% if not r.has_master_data %}<span class="muted">no master data yet</span>
{% elif r.gaps %}<a href="{{ base }}/agreements/{{ r.id | urlencode }}#gaps">{{ r.gaps }}</a>
{% else %}0{% endif %}</td>
<td>{{ r.scanning_addon | yesno }}</td>
<td>{% if r.api_access is none %}<span class="muted">unknown</span>{% elif r.api_access %}
<span class="badge ok">ok</span>{% else %}<span class="badge failed" title="{{ r.master_data_error or '' }}">no access
</span>{% endif %}</td>
<td><a href="{{ base }}/agreements/{{ r.id | urlencode }}/bills">bill log</a></td></tr>
{% else %}<tr><td colspan="10" class="muted">No agreement matches.</td></tr>{% endfor %}
</tbody></table></div>
{{ pager(page, pages, total, page_url) }}
{% endblock %}"""

SETUP = """{% extends "layout.html" %}
{% macro keep_option(name, selected) %}{% set k = kept.get(name) %}{% if k %}
<option value="{{ keep }}"{% if selected in (k.value, keep) %} selected{% endif %}>keep {{ k.value }}
({{ k.reason }})</option>{% endif %}{% endmacro %}
{% macro account_select(name, selected, allow_none=True) %}
<select name="{{ name }}">{{ keep_option(name, selected) }}{% if allow_none %}<option value=""
{% if kept.get(name) and selected == "" %} selected{% endif %}>— not mapped —</option>{% endif %}
{% for a in accounts %}<option value="{{ a.accountNumber }}"{% if a.accountNumber | string == selected %} selected
{% endif %}>{{ a.accountNumber }} {{ a.name }}{% if a.vatAccount %} ({{ a.vatAccount.vatCode }}){% endif %}</option>
{% endfor %}</select>{% if issue(selected) %}<span class="badge failed">was {{ selected }}: {{ issue(selected) }}
</span>{% endif %}
{% endmacro %}
{% macro suggestion_note(name, selected) %}{% set s = suggested.get(name) %}{% if s %}
<div class="small suggestion"><span class="badge suggested">suggested</span> {{ s.account }} {{ s.account_name }}:
{{ s.reason }} ({{ (s.confidence * 100) | round | int }}% sure){% if s.account | string != selected %}, not
chosen{% endif %} · not mapped until you save</div>{% endif %}{% endmacro %}
{% macro journal_select(name, selected) %}
<select name="{{ name }}">{{ keep_option(name, selected) }}<option value="">— choose —</option>
{% for j in journals %}<option value="{{ j.journalNumber }}"{% if j.journalNumber | string == selected %}
 selected{% endif %}>{{ j.journalNumber }} {{ j.name }}{% if j.settings and j.settings.entryTypeRestrictedTo %}
 ({{ j.settings.entryTypeRestrictedTo }} only){% endif %}</option>{% endfor %}</select>
{% endmacro %}
{% block body %}
{% if can_refresh %}<div class="top-right" id="refresh">
<form method="post" action="{{ base }}/agreements/{{ agreement.id | urlencode }}/refresh" class="inline">
{{ csrf_input }}<button type="submit" class="secondary" title="starts the {{ master_dag }} DAG for this agreement only
and shows its progress">⟳ Refresh master data</button></form>
<form method="post" action="{{ base }}/agreements/{{ agreement.id | urlencode }}/fetch" class="inline">
{{ csrf_input }}<button type="submit" class="secondary" title="the api-server fetches it now, without the scheduler"
>Fetch here now</button></form></div>{% endif %}
<h1>Setup of {{ agreement.name }}</h1>
{% if errors %}<div class="errors"><strong>Not saved:</strong><ul class="plain">{% for e in errors %}<li>{{ e }}</li>
{% endfor %}</ul></div>{% endif %}
{% if not has_master_data %}<div class="warnbox">No master data stored for this agreement yet:
refresh it before mapping.</div>{% endif %}
{% if kept %}<div class="warnbox" id="kept"><strong>Stored values this form cannot offer</strong> (e-conomic no
longer allows them, or they are missing from its master data). SAVE keeps them as they are:<ul class="plain">
{% for k in kept.values() %}<li>kept: {{ k.text }}: fix or remove it explicitly</li>{% endfor %}</ul>
<span class="small">Choose another value (or “— not mapped —”) in its field to change or remove it.</span></div>
{% endif %}
<p class="muted">Master data from {{ master_data_at | dt }}{% if master_data_error %} ·
<span class="badge failed">{{ master_data_error }}</span>{% endif %}</p>

<h2 id="prerequisites">Prerequisites in e-conomic</h2>
{% if me %}<p class="small" id="connected-to">e-conomic agreement <strong>{{ me.agreementNumber }}</strong>
({{ (me.company or {}).name or "no company name" }}), base currency
<strong>{{ (me.settings or {}).baseCurrency or "not given" }}</strong> · Roger company
<strong>{{ agreement.roger_company_id }}</strong>{% if roger_company.name %} ({{ roger_company.name }}){% endif %}
</p>{% endif %}
<div class="scroll"><table class="prerequisites"><tbody>
<tr id="prereq-api"><td>{{ mark(status.api_access if status else none) }} API access</td>
<td class="small">{% if status and status.api_access %}The app is added to this agreement and answers.{% else %}The app
must be added to the agreement: a superuser (for an accountant, in the client's agreement) approves it with “Tilføj
app” (connect the client again from “Add a client”), and the agreement's subscription must include API access
(e-conomic: Settings → Subscription).{% if status and status.master_data_error %}
<div class="reason">{{ status.master_data_error }}</div>{% endif %}{% endif %}</td></tr>
<tr id="prereq-scanning"><td>{{ mark(status.scanning_addon if status else none) }} Indscanning (scanning add-on)</td>
<td class="small">{% if status and status.scanning_addon %}Bills are booked with their PDF attached.{% else %}Needed to
attach the bill's PDF to the voucher. Enable it in e-conomic: Settings → Subscription → add-on modules →
Indscanning.{% endif %}</td></tr></tbody></table></div>
{% if status and status.scanning_addon == false %}<div class="warnbox" id="no-scanning">Without Indscanning this
client's bills are booked only if “Book without attachment” is chosen below on purpose (now:
<strong>{{ "on" if agreement.book_without_attachment else "off" }}</strong>){% if not
agreement.book_without_attachment %}: until then they wait{% endif %}.</div>{% endif %}
{% if can_edit %}<form method="post" action="{{ base }}/agreements/{{ agreement.id | urlencode }}/prerequisites"
 class="inline">{{ csrf_input }}<button type="submit" class="secondary">Check again</button></form>
<span class="muted">reads e-conomic's /self for this agreement now</span>{% endif %}
{% if can_add_client %}{% if waiting %}<a class="button" id="connect-another" href="{{ base }}/clients/next"
>Connect another client</a> <span class="muted">goes to e-conomic for
<strong>{{ waiting[0].company_name or waiting[0].company_id }}</strong> ({{ waiting | length }} waiting)</span>
{% else %}<a class="button" id="connect-another" href="{{ base }}/clients/new">Connect another client</a>{% endif %}
{% endif %}

<h2 id="gaps">Mapping gaps{% if has_master_data %} ({{ gaps | length }}){% endif %}</h2>
{% if not has_master_data %}<p class="muted">Not known yet: no master data stored for this agreement, so nothing can
be checked.</p>
{% elif gaps %}<div class="scroll"><table><thead><tr><th>Kind</th><th>Item</th><th>Problem</th><th>Stops</th></tr>
</thead><tbody>
{% for g in gaps %}<tr><td>{{ g.kind }}</td><td>{{ g.item }}</td><td>{{ g.message }}</td>
<td><span class="badge {{ 'failed' if g.stops == 'agreement' else 'stopped' }}">{{ g.stops }}</span></td></tr>
{% endfor %}</tbody></table></div>{% else %}<p class="muted">None: every category and payment method can be booked.</p>
{% endif %}

<form method="post" action="{{ base }}/agreements/{{ agreement.id | urlencode }}">{{ csrf_input }}
<input type="hidden" name="version" value="{{ version }}">
{% if suggested %}<div class="warnbox" id="suggested"><strong>{{ suggested | length }} suggested mapping(s)</strong>
for items not mapped yet, marked <span class="badge suggested">suggested</span> and preselected below, each with its
reason. They are not stored, and no bill is booked on them, until you check them and save.</div>{% endif %}
<h2>Journals and policies</h2><div class="grid">
<label>Supplier invoice journal</label>{{ journal_select("invoice_journal", sel.invoice_journal) }}
<label>Supplier payment journal</label>{{ journal_select("payment_journal", sel.payment_journal) }}
<label>Default account</label><div>{{ account_select("default_account", sel.default_account) }}
<span class="muted">for categories without a mapping</span></div>
<label>Supplier policy</label><select name="supplier_policy">{% for p in supplier_policies %}
<option value="{{ p }}"{% if p == sel.supplier_policy %} selected{% endif %}>{{ p }}</option>{% endfor %}</select>
<label>Supplier group / payment terms</label><div>
<input name="supplier_group" value="{{ sel.supplier_group }}" size="5" inputmode="numeric">
<input name="payment_terms" value="{{ sel.payment_terms }}" size="5" inputmode="numeric">
<span class="muted">needed by policy "create"</span></div>
<label>Default supplier</label><div><select name="default_supplier">{{ keep_option("default_supplier",
sel.default_supplier) }}<option value="">— none —</option>
{% for s in suppliers %}<option value="{{ s.supplierNumber }}"{% if s.supplierNumber | string == sel.default_supplier %}
 selected{% endif %}>{{ s.supplierNumber }} {{ s.name }}</option>{% endfor %}</select>
<span class="muted">needed by policy "default"</span></div>
<label>Closed-period policy</label><select name="closed_period_policy">{% for p in closed_policies %}
<option value="{{ p }}"{% if p == sel.closed_period_policy %} selected{% endif %}>{{ p }}</option>{% endfor %}</select>
<label>Book without attachment</label><div><input type="checkbox" name="book_without_attachment" value="1"
{% if sel.book_without_attachment %} checked{% endif %}></div>
</div>

<h2>Roger payment methods → account</h2>
<div class="scroll"><table><thead><tr><th>Payment method</th><th>Account</th></tr></thead><tbody>
{% for m in methods %}<tr><td>{{ m.name }}
<span class="muted">{{ m.id }}{% if m.kind %} · {{ m.kind }}{% endif %}</span></td>
<td>{{ account_select("pm_account__" ~ m.id, sel.get("pm_account__" ~ m.id, "")) }}
{{ suggestion_note("pm_account__" ~ m.id, sel.get("pm_account__" ~ m.id, "")) }}</td></tr>
{% else %}<tr><td colspan="2" class="muted">No payment methods in Roger's master data.</td></tr>{% endfor %}
</tbody></table></div>

<h2>Roger categories → account and VAT code</h2>
<div class="scroll"><table><thead><tr><th>Category</th><th>Account</th><th>VAT code</th></tr></thead><tbody>
{% for c in categories %}{% set vat_name = "cat_vat__" ~ c.id %}<tr><td>{{ c.name }}
<span class="muted">{{ c.id }}</span></td>
<td>{{ account_select("cat_account__" ~ c.id, sel.get("cat_account__" ~ c.id, "")) }}
{{ suggestion_note("cat_account__" ~ c.id, sel.get("cat_account__" ~ c.id, "")) }}</td>
<td><select name="{{ vat_name }}">{{ keep_option(vat_name, sel.get(vat_name, "")) }}<option value="">— account's
 own —</option>
{% for v in vat_codes %}<option value="{{ v.vatCode }}"{% if v.vatCode == sel.get(vat_name, "") %} selected
{% endif %}>{{ v.vatCode }} {{ v.name }}</option>{% endfor %}</select></td></tr>
{% else %}<tr><td colspan="3" class="muted">No categories in Roger's master data.</td></tr>{% endfor %}
</tbody></table></div>
{% if can_edit %}<p><button type="submit" name="action" value="save">Save</button>
<a class="button" href="{{ base }}/">Cancel</a> <span class="muted">Cancel discards the changes on this page.</span></p>
{% else %}<p class="muted">Read only: you may not change this setup.</p>{% endif %}
</form>

{% if can_add_client and agreement.active %}<h2 id="remove">Remove this client</h2>
<form method="post" action="{{ base }}/agreements/{{ agreement.id | urlencode }}/deactivate" class="inline">
{{ csrf_input }}<button type="submit" class="secondary">Remove this client…</button></form>
<span class="muted">asks first; the history is kept</span>{% elif not agreement.active %}<h2 id="remove">Removed</h2>
<p class="muted">This client is inactive: nothing is booked for it. Its history is kept.</p>{% endif %}

<h2 id="history">History ({{ audit | length }}{% if audit | length >= audit_limit %}, the latest{% endif %})</h2>
{% if audit %}<div class="scroll"><table><thead><tr><th>When</th><th>Who</th><th>What</th><th>Before → after</th></tr>
</thead><tbody>{% for a in audit %}<tr class="audit-{{ a.action }}"><td>{{ a.at | dt }}</td><td>{{ a.actor }}</td>
<td>{{ action_text(a) }}</td><td>{% set changes = change_lines(a) %}{% if changes %}<ul class="plain">
{% for c in changes %}<li>{{ c }}</li>{% endfor %}</ul>{% else %}<span class="muted">{{ a.note or '—' }}</span>
{% endif %}</td></tr>{% endfor %}</tbody></table></div>
{% else %}<p class="muted">Nothing changed on this page yet.</p>{% endif %}
{% endblock %}"""

BILLS = """{% extends "layout.html" %}{% from "pager.html" import pager %}
{% macro keep_filter() %}<input type="hidden" name="state" value="{{ state }}"><input type="hidden" name="q"
 value="{{ q }}"><input type="hidden" name="page" value="{{ page }}">{% endmacro %}
{% block body %}
<h1>Bill log of {{ agreement.name }}</h1>
<p class="muted">Re-sync sets a quarantined bill's staged state back to <em>new</em>, so the next bills run judges it
again (for example after a mapping was fixed). The posting ledger is not touched: an entry that is already booked
keeps its ledger row and is never booked twice; correct a wrong booked entry in e-conomic.</p>
{% if can_edit %}<form method="post" class="inline"
 action="{{ base }}/agreements/{{ agreement.id | urlencode }}/bills/resync-quarantined">{{ csrf_input }}
{{ keep_filter() }}<button type="submit"{% if not states.get('quarantined') %} disabled{% endif %}>
Re-sync all quarantined ({{ states.get('quarantined', 0) }})…</button></form>{% endif %}
<form class="filters" method="get" action="{{ base }}/agreements/{{ agreement.id | urlencode }}/bills">
<input type="search" name="q" value="{{ q }}" placeholder="vendor, invoice no., amount or bill id" size="30">
<select name="state"><option value="">all states</option>{% for s in all_states %}
<option value="{{ s }}"{% if s == state %} selected{% endif %}>{{ s }} ({{ states.get(s, 0) }})</option>{% endfor %}
</select><button type="submit">Filter</button>{% if q or state %}
<a href="{{ base }}/agreements/{{ agreement.id | urlencode }}/bills">clear</a>{% endif %}</form>
<div class="scroll"><table><thead><tr><th>Bill</th><th>Vendor / invoice</th><th class="num">Amount</th><th>State</th>
<th>Postings (kind · status · journal · year · voucher)</th><th>Open quarantine</th><th>Review</th>
<th>Issued · due · paid</th><th></th></tr></thead><tbody>
{% for b in rows %}<tr id="bill-{{ b.bill_id }}">
<td>{{ b.bill_id }}<div class="muted">v{{ b.version }} · {{ b.status or '' }} · {{ b.category or '' }}</div></td>
<td>{{ b.vendor or '' }}<div class="muted">{{ b.invoice_number or '' }}</div></td>
<td class="num">{{ b.amount | amount }} {{ b.currency or '' }}</td>
<td><span class="badge {{ b.state }}">{{ b.state }}</span><div class="explain">{{ explain.get(b.state, '') }}</div></td>
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
<td class="dates">issued {{ b.issue_date | day }}<div>due {{ b.due_date | day }}</div>
<div>paid {{ b.paid_date | day }}</div></td>
<td>{% if b.state in resync_states and can_edit %}<form method="post" class="inline"
 action="{{ base }}/agreements/{{ agreement.id | urlencode }}/bills/resync">
<input type="hidden" name="bill_id" value="{{ b.bill_id }}">{{ keep_filter() }}{{ csrf_input }}
<button type="submit" class="secondary" title="set back to new: the next run re-judges it">Re-sync</button></form>
{% elif b.state == 'new' %}<span class="muted">queued</span>{% endif %}</td></tr>
{% else %}<tr><td colspan="9" class="muted">No bills{% if q or state %} match{% endif %}.</td></tr>{% endfor %}
</tbody></table></div>
{{ pager(page, pages, total, page_url) }}
{% endblock %}"""

CONFIRM = """{% extends "layout.html" %}{% block body %}
<h1>Re-sync {{ count }} quarantined bill(s) of {{ agreement.name }}?</h1>
{% if note %}<div class="warnbox">{{ note }}</div>{% endif %}
<p>They are set back to <em>new</em>: the next bills run judges each of them again. The posting ledger is not
touched, so nothing is booked twice.</p>
<form method="post" action="{{ base }}/agreements/{{ agreement.id | urlencode }}/bills/resync-quarantined"
 class="inline">{{ csrf_input }}<input type="hidden" name="confirm" value="yes"><input type="hidden" name="expected"
 value="{{ count }}"><input type="hidden" name="state" value="{{ state }}"><input type="hidden" name="q"
 value="{{ q }}"><input type="hidden" name="page" value="{{ page }}">
<button type="submit">Yes, re-sync {{ count }} bill(s)</button></form>
<a class="button" href="{{ back }}">Cancel</a>
{% endblock %}"""

ADD_CLIENT = """{% extends "layout.html" %}{% block body %}
<h1>Add a client</h1>
{% if errors %}<div class="errors"><strong>Not connected:</strong><ul class="plain">{% for e in errors %}<li>{{ e }}
</li>{% endfor %}</ul></div>{% endif %}
{% if not mode %}<p>Step 1 of 3. Do you run one company, or several (an accountancy firm, connecting its clients one
approval after the other)?</p>
<p id="choose-mode"><a class="button" href="{{ base }}/clients/new?mode=one">One company</a>
<a class="button" href="{{ base }}/clients/new?mode=several">Several companies (accountancy firm)</a></p>
<p class="muted">Several companies: you enter the clients' Roger companies first; then each approval in e-conomic
is followed at once by the next client's, with nothing to type in between. Many clients from a file: the
agreements file and its CLI, or the CSV import.</p>
{% else %}
{% if mode == "several" %}{% if added %}<p class="ok-line" id="added">✓ Roger company
<strong>{{ added.company_id }}</strong>: <strong class="company-name">{{ added.company_name }}</strong>, added to
the list.</p>{% endif %}
<h2>Clients to connect ({{ waiting | length }})</h2>
{% if waiting %}<div class="scroll"><table id="queue"><thead><tr><th>Roger company</th><th>Name (from Roger)</th>
<th>e-conomic</th></tr></thead><tbody>{% for q in waiting %}<tr><td>{{ q.company_id }}</td>
<td class="company-name">{{ q.company_name }}</td><td>{{ "at e-conomic, not approved yet" if q.at_economic else
"waiting" }}</td></tr>{% endfor %}</tbody></table></div>
<p><a class="button connect" id="connect-next" href="{{ base }}/clients/next">CONNECT E-CONOMIC</a>
<span class="muted">for <strong>{{ waiting[0].company_name or waiting[0].company_id }}</strong>; after its approval
“Connect another client” goes straight to e-conomic for the next.</span></p>
{% else %}<p class="muted">None yet: add the first client's Roger company below.</p>{% endif %}
<p>Add a client's Roger business account: the token is checked with Roger now; the company's name comes back as
proof. The list is kept for this login only, for {{ queue_hours }} hours.</p>
{% else %}<p>Step 1 of 3: the client's Roger business account. The token is checked with Roger now; the company's
name comes back as proof. <a href="{{ base }}/clients/new?mode=several">Several companies instead</a></p>{% endif %}
<form method="post" action="{{ base }}/clients/new">{{ csrf_input }}<input type="hidden" name="mode"
 value="{{ mode }}"><div class="grid">
<label for="company_id">Roger company id</label><input id="company_id" name="company_id" value="{{ company_id }}"
 required maxlength="64" autocomplete="off">
<label for="roger_token">Roger API token</label><input id="roger_token" name="roger_token" type="password" required
 autocomplete="off"></div>
<p><button type="submit">{{ "Check with Roger and add to the list" if mode == "several" else "Check with Roger" }}
</button> <a class="button" href="{{ base }}/">Cancel</a></p></form>
<p class="muted">Step 2 connects e-conomic: you approve the app there (“Tilføj app”) and come back here. Step 3
checks the prerequisites on the client's setup page.</p>
{% endif %}
{% endblock %}"""

CONNECT = """{% extends "layout.html" %}{% block body %}
<h1>Add a client</h1>
<p class="ok-line">✓ Roger company <strong>{{ pending.company_id }}</strong>:
<strong class="company-name">{{ pending.company_name }}</strong></p>
<p>Step 2 of 3: connect the client's e-conomic agreement. You go to e-conomic, log in (as an accountant: in the
client's agreement), check the agreement number shown there and click “Tilføj app”. e-conomic sends you back here
and the client's setup page opens.</p>
<p><a class="button connect" href="{{ base }}/clients/connect?state={{ pending.state | urlencode }}"
>CONNECT E-CONOMIC</a> <a class="button" href="{{ base }}/clients/new?mode=one">Another Roger company</a></p>
<p class="muted">This step must be finished within {{ minutes }} minutes, from this login.</p>
{% endblock %}"""

REMOVE = """{% extends "layout.html" %}{% block body %}
<h1>Remove {{ agreement.name }}?</h1>
<p>The agreement becomes inactive: no bill is fetched or booked for it any more. Its history (bills, postings,
audit) is kept. Its e-conomic grant (the Airflow connection <code>{{ conn_id or "—" }}</code>) is deleted.</p>
<div class="warnbox">Revoke the app in e-conomic too: the client (or you, in the client's agreement) removes it under
Settings → Apps; until then the grant token would still work for whoever holds it.</div>
<form method="post" action="{{ base }}/agreements/{{ agreement.id | urlencode }}/deactivate" class="inline">
{{ csrf_input }}<input type="hidden" name="confirm" value="yes"><button type="submit">Yes, remove this client</button>
</form> <a class="button" href="{{ base }}/agreements/{{ agreement.id | urlencode }}">Cancel</a>
{% endblock %}"""

PROGRESS = """{% extends "layout.html" %}
{% block head %}{% if not seen.done %}<meta http-equiv="refresh" content="{{ every }}">{% endif %}{% endblock %}
{% block body %}
<h1>Fetching the master data of {{ agreement.name }}</h1>
<p>e-conomic's accounts, journals, accounting years, VAT codes, suppliers and modules, and Roger's categories and
payment methods, for this agreement only. {% if direct %}Fetched here, by the api-server (run
<code>{{ run_id }}</code>).{% else %}By the <code>{{ master_dag }}</code> DAG, run <code>{{ run_id }}</code>.
{% endif %}</p>
<ol class="stages">{% for name, where in stages %}<li class="{{ where }}">{{ name }}</li>{% endfor %}</ol>
<div class="{{ 'errors' if seen.progress == 'failed' else 'msg' }}" id="progress" role="status">
{% if not seen.done %}<span class="spinner" aria-hidden="true"></span>{% endif %}
<strong class="state">{{ seen.progress }}</strong>: {{ seen.text }}</div>
{% if seen.no_scheduler %}<div class="warnbox" id="no-scheduler"><strong>Nothing is running this fetch.</strong>
{% if can_refresh %}Fetch the data here instead (the api-server does it now, for this agreement only):
<form method="post" action="{{ base }}/agreements/{{ agreement.id | urlencode }}/fetch" class="inline">
{{ csrf_input }}<button type="submit">Fetch here now</button></form>{% endif %}</div>
{% elif seen.progress == "failed" and can_refresh %}<form method="post" class="inline"
 action="{{ base }}/agreements/{{ agreement.id | urlencode }}/fetch">{{ csrf_input }}
<button type="submit">Fetch again, here</button></form>{% endif %}
<p>{% if not seen.done %}<span class="muted">This page looks again every {{ every }} s by itself and continues to the
setup when the data is in.</span> <a href="">Look now</a> · {% endif %}<a
 href="{{ base }}/agreements/{{ agreement.id | urlencode }}">{{ "Back to the setup" if seen.done else
"Go to the setup without waiting" }}</a></p>
{% endblock %}"""

ERROR = """{% extends "layout.html" %}{% block body %}<h1>{{ code }}</h1><p>{{ detail }}</p>
<p><a href="{{ base }}/">Back to the overview</a></p>{% endblock %}"""


COPENHAGEN = ZoneInfo("Europe/Copenhagen")


def _dt(value: Any) -> str:
    """A moment as a Danish accountant reads it: Copenhagen time, with the zone (CET/CEST)."""
    if value is None:
        return "—"
    if not isinstance(value, datetime):
        return str(value)
    if value.tzinfo is None:  # SQLite returns what was stored in UTC without its zone
        value = value.replace(tzinfo=UTC)
    return value.astimezone(COPENHAGEN).strftime("%d-%m-%Y %H:%M %Z")


def _day(value: Any) -> str:
    """A calendar date from Roger (``2026-10-05``) as dd-mm-yyyy; anything else as it is."""
    if not value:
        return "—"
    try:
        return date.fromisoformat(str(value)).strftime("%d-%m-%Y")
    except ValueError:
        return str(value)


def _amount(value: Any) -> str:
    """An amount the Danish way: 1.234,56 (a value that is not a number is shown as it is)."""
    if value in (None, ""):
        return ""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if not number.is_finite():
        return str(value)
    return f"{number:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")


def _yesno(value: Any) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _mark(value: Any) -> Markup:
    """✓ / ✗ / ? for a prerequisite (None: not checked yet)."""
    if value is None:
        return Markup('<span class="badge never" title="not checked yet">?</span>')
    return Markup('<span class="badge ok">✓</span>') if value else Markup('<span class="badge failed">✗</span>')


templates = Environment(
    loader=DictLoader(
        {
            "layout.html": LAYOUT,
            "pager.html": PAGER,
            "overview.html": OVERVIEW,
            "setup.html": SETUP,
            "bills.html": BILLS,
            "confirm.html": CONFIRM,
            "error.html": ERROR,
            "add_client.html": ADD_CLIENT,
            "connect.html": CONNECT,
            "remove.html": REMOVE,
            "progress.html": PROGRESS,
        }
    ),
    autoescape=select_autoescape(default=True, default_for_string=True),
)
templates.filters["dt"] = _dt
templates.filters["yesno"] = _yesno
templates.filters["day"] = _day
templates.filters["amount"] = _amount
templates.globals["mark"] = _mark


def _base(request: Request) -> str:
    """The app's own URL prefix (Airflow's base_url path + the mount point)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    user = context.pop("user", None)
    # without a user (an ended session), a form shown again keeps the token it was sent with
    own = security.csrf_token(security.request_session(request)) if user is not None else ""
    token = own or security.submitted_form(request).get(security.CSRF_FIELD, "")
    ended = user is None and status_code == 401  # who it was is unknown until logged in again: the form offers
    # sending it again (the route checks the permission then)
    html = templates.get_template(name).render(
        css=CSS,
        base=_base(request),
        msg=security.shown_message(request),
        user_name=user.get_name() if user is not None else "",
        csrf_input=Markup('<input type="hidden" name="{}" value="{}">').format(security.CSRF_FIELD, token),
        can_edit=ended or security.allowed(CanEdit, request, user),
        can_refresh=ended or security.allowed(CanTriggerRefresh, request, user),
        can_add_client=ended or (security.allowed(CanEdit, request, user) and security.may_change_connections(user)),
        login_url=_login_url(request) if status_code == 401 else "",
        **context,
    )
    return HTMLResponse(html, status_code=status_code)


def _login_url(request: Request) -> str:
    """Airflow's login page, coming back to the page the refused request was sent from."""
    from airflow.api_fastapi.app import get_auth_manager

    back = request.headers.get("referer", "") if request.method != "GET" else str(request.url)
    return get_auth_manager().get_url_login(next_url=back or f"{_base(request)}/")


def bar_chart(runs: list[dict[str, Any]], width: int = 900, height: int = 170) -> str:
    """Inline SVG: two bars per run (entries booked, bills quarantined) over dates; numbers are ints, text escaped."""
    from html import escape

    left, bottom, top = 36, 30, 8
    peak = max([1, *(max(r["booked"], r["quarantined"]) for r in runs)])
    slot = (width - left) / max(len(runs), 1)
    bar = max(2.0, slot * 0.38)
    plot = height - bottom - top
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img"'
        f' aria-label="entries booked and bills quarantined per bills run, by date"'
        f' width="100%" viewBox="0 0 {width} {height}" preserveAspectRatio="none" class="runs-chart">',
        f'<line x1="{left}" y1="{top + plot}" x2="{width}" y2="{top + plot}" stroke="#9aa5b1"/>',
        f'<text x="{left - 4}" y="{top + 10}" font-size="11" text-anchor="end">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot}" font-size="11" text-anchor="end">0</text>',
    ]
    for i, run in enumerate(runs):
        x = left + i * slot + slot * 0.1
        label = escape(
            f"{run['run_id']} ({_dt(run['finished_at'])}): {run['booked']} entries booked, "
            f"{run['quarantined']} bills quarantined" + (f", {run['failed']} phase(s) not ok" if run["failed"] else "")
        )
        for offset, value, colour, kind in (
            (0, run["booked"], "#2f9e44", "booked"),
            (bar, run["quarantined"], "#e0a800", "quarantined"),
        ):
            h = round(plot * value / peak, 1)
            parts.append(
                f'<rect class="bar-{kind}" x="{x + offset:.1f}" y="{top + plot - h:.1f}" width="{bar:.1f}"'
                f' height="{h}" fill="{colour}"><title>{label}</title></rect>'
            )
        if run["failed"]:
            parts.append(
                f'<circle cx="{x + bar:.1f}" cy="{top + plot + 8}" r="3" fill="#c92a2a"><title>{label}</title></circle>'
            )
        if i % max(1, len(runs) // 6) == 0 or i == len(runs) - 1:  # a date under every sixth run or so
            parts.append(
                f'<text class="date" x="{x + bar:.1f}" y="{height - 4}" font-size="11" text-anchor="middle">'
                f"{escape(_dt(run['finished_at'])[:5])}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _page_url(request: Request, path: str, **params: Any) -> Callable[[int], str]:
    kept = {k: v for k, v in params.items() if v}

    def url(page: int) -> str:
        return f"{_base(request)}{path}?{urlencode({**kept, 'page': page})}"

    return url


def _redirect(request: Request, path: str, msg: str, **params: Any) -> RedirectResponse:
    """Back to a page (with the filter it was shown with: ``params``) and a message the server signed."""
    kept = {k: v for k, v in params.items() if v}
    query = urlencode({**kept, "msg": msg, "sig": security.sign_message(msg)})
    return RedirectResponse(f"{_base(request)}{path}?{query}", status_code=303)


def _bill_filter(form: Any) -> dict[str, Any]:
    """The bill log's filter as a form carried it (so an action returns to the same view)."""
    state = str(form.get("state") or "")
    page = str(form.get("page") or "")
    return {
        "state": state if state in queries.BILL_STATES else "",
        "q": str(form.get("q") or "")[:200],
        "page": page if page.isdigit() else "",
    }


# ------------------------------------------------------------------------------------------------ app

app = FastAPI(
    title="Roger → e-conomic",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
    dependencies=[Depends(security.keep_form), Depends(security.require_csrf_token)],
)
app.add_middleware(security.SameOriginPosts)
app.add_middleware(security.SecurityHeaders)  # outermost: a refused request carries the headers too


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """Send a browser that is not logged in to Airflow's login page; otherwise a small error page."""
    wants_html = "text/html" in request.headers.get("accept", "")
    if exc.status_code == 401 and request.method == "GET" and wants_html:
        from airflow.api_fastapi.app import get_auth_manager

        back = str(request.url)
        if request.url.path.endswith("/clients/callback"):  # the URL holds the grant token: start again instead
            back = str(request.url.replace(path=f"{_base(request)}/clients/new", query=""))
        return RedirectResponse(get_auth_manager().get_url_login(next_url=back), status_code=303)
    if not wants_html:
        return Response(
            content=str(exc.detail),
            status_code=exc.status_code,
            media_type="text/plain",
            headers=getattr(exc, "headers", None),
        )
    user = await security.current_user(request)
    if request.method == "POST" and exc.status_code in (401, 403):
        kept = await _setup_form_kept(request, user, exc) or _add_client_kept(request, user, exc)
        if kept is not None:
            return kept
    return render(
        request,
        "error.html",
        status_code=exc.status_code,
        user=user,
        code=exc.status_code,
        detail=_refusal(request, exc),
    )


SESSION_ENDED = "Nothing was changed: you are not logged in (the session ended or expired)."
NOT_ALLOWED_ADD = (
    "Nothing was changed: your login may not add a client (it needs edit rights on the "
    f"{BILLS_DAG} DAG and the right to create Airflow connections)."
)
NOT_ALLOWED = "Nothing was changed: your login may not do this (it needs that permission on the {dag} DAG)."


def _refusal(request: Request, exc: StarletteHTTPException) -> str:
    """Why a request was refused, in words (Airflow's own 403 says only "Forbidden")."""
    if exc.status_code == 401:
        return SESSION_ENDED
    if exc.status_code == 403 and request.method not in security.SAFE_METHODS and exc.detail != security.CSRF_REFUSED:
        if request.url.path.rstrip("/").endswith("/clients/new"):
            return NOT_ALLOWED_ADD
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


def _add_client_kept(request: Request, user: BaseUser | None, exc: StarletteHTTPException) -> Response | None:
    """A refused step 1 of adding a client: the company id as typed, and why (the token is never sent back)."""
    if request.url.path.rstrip("/") != f"{_base(request)}/clients/new":
        return None
    form = security.submitted_form(request)
    company_id = form.get("company_id", "").strip()[:64]
    why = [_refusal(request, exc), "Type the Roger API token again: it is not shown back."]
    mode = form.get("mode") or onboarding.Mode.ONE
    return _add_client_page(request, user, why, company_id, status_code=exc.status_code, mode=mode)


@app.exception_handler(RequestValidationError)
async def _bad_request(request: Request, exc: RequestValidationError) -> Response:
    """A bad query value (``?page=abc``) answers a page that says which, not FastAPI's JSON."""
    user = await security.current_user(request)
    return render(
        request, "error.html", status_code=400, user=user, code=400, detail=security.invalid_request_text(exc)
    )


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
    return render(
        request,
        "overview.html",
        user=user,
        rows=rows,
        total=total,
        page=max(1, page),
        pages=pages,
        q=q,
        outcome=outcome,
        outcomes=queries.OUTCOMES,
        runs=runs,
        chart=bar_chart(runs) if runs else "",
        page_url=_page_url(request, "/", q=q, outcome=outcome),
    )


def _setup_selection(setup: queries.Setup) -> dict[str, Any]:
    a = setup.agreement
    sel: dict[str, Any] = {
        key: "" if getattr(a, key) is None else str(getattr(a, key))
        for key in SETUP_FIELDS
        if key != "book_without_attachment"  # a checkbox: shown as a bool below
    }
    sel["book_without_attachment"] = bool(a.book_without_attachment)
    for cid, (account, vat) in setup.categories.items():
        sel[f"cat_account__{cid}"], sel[f"cat_vat__{cid}"] = str(account), vat or ""
    for mid, account in setup.methods.items():
        sel[f"pm_account__{mid}"] = str(account)
    for key, suggestion in setup.suggested.items():  # unmapped items only: preselected, stored only by SAVE
        sel.setdefault(key, str(suggestion.account))
    return sel


AUDIT_LIMIT = 50


def _shown(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value[:10]) + (f" … ({len(value)} in all)" if len(value) > 10 else "")
    return str(value)


def _change_lines(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [
        f"{key}: {_shown(before.get(key))} → {_shown(after.get(key))}" for key in sorted(before.keys() | after.keys())
    ]


ACTION_TEXTS = {  # setup_audit.action → how the agreement's history says it ({target}, {note}, {outcome} filled in)
    "save_setup": "saved the setup",
    "resync_bill": "re-synced bill {target}",
    "resync_quarantined": "re-synced all quarantined bills ({target})",
    "config_add": "added by loading the agreements file (config load)",
    "config_replace": "changed by loading the agreements file (config load --replace)",
    "config_deactivate": "deactivated: not in the agreements file (config load --deactivate-missing)",
    "import_csv": "added by a CSV import ({target})",
    "add_client": "added this client (Roger checked, e-conomic app approved)",
    "remove_client": "removed this client (inactive, grant connection deleted)",
    "check_prerequisites": "checked the prerequisites in e-conomic",
    "refresh": f"started a master-data refresh: {MASTER_DATA_DAG} run {{target}}",
    fetching.STARTED: "started fetching the master data here ({note}): {target}",
    fetching.FINISHED: "master data fetch {target}: {outcome}",
}


def _action_text(row: Any) -> str:
    text = ACTION_TEXTS.get(row.action)
    if text is None:
        return row.action
    outcome = (row.after or {}).get("outcome", "?")
    return text.format(target=row.target or "?", note=row.note or "direct fetch", outcome=outcome)


def _render_setup(
    request: Request,
    user: BaseUser | None,
    setup: queries.Setup,
    sel: dict[str, Any],
    errors: list[str] | None = None,
    status_code: int = 200,
    version: str | None = None,
    audit: list[Any] | None = None,
    waiting: list[onboarding.Queued] | None = None,
) -> HTMLResponse:
    accounts = {a["accountNumber"]: a for a in setup.snapshots.get("accounts") or [] if "accountNumber" in a}

    def issue(value: Any) -> str | None:
        try:
            number = int(value)
        except (TypeError, ValueError):
            return None
        return masterdata.account_problem(accounts, number)

    status = setup.status
    return render(
        request,
        "setup.html",
        status_code=status_code,
        user=user,
        agreement=setup.agreement,
        agreement_id=setup.agreement.id,
        agreement_name=setup.agreement.name,
        errors=errors or [],
        has_master_data=bool(setup.snapshots),
        me=setup.snapshots.get("self") or {},  # e-conomic's /self as last fetched: which agreement this is
        roger_company=setup.snapshots.get("roger_company") or {},
        master_data_at=status.master_data_at if status else None,
        master_data_error=status.master_data_error if status else None,
        gaps=queries.current_gaps(setup),
        journals=setup.journals,
        accounts=setup.accounts,
        vat_codes=setup.vat_codes,
        suppliers=setup.suppliers,
        categories=setup.roger_categories,
        methods=setup.roger_methods,
        sel=defaultdict(str, sel),
        issue=issue,
        supplier_policies=SUPPLIER_POLICIES,
        closed_policies=CLOSED_PERIOD_POLICIES,
        master_dag=MASTER_DATA_DAG,
        kept=queries.unshowable(setup),
        keep=queries.KEEP,
        suggested=setup.suggested,
        status=status,
        version=queries.setup_version(setup.agreement) if version is None else version,
        audit=audit or [],
        audit_limit=AUDIT_LIMIT,
        waiting=waiting or [],  # a firm's clients still to connect (several companies)
        action_text=_action_text,
        change_lines=lambda row: _change_lines(row.before or {}, row.after or {}),
    )


def _load_page(agreement_id: str) -> tuple[queries.Setup, list[Any]]:
    with session() as sess:
        setup = queries.with_suggestions(sess, _agreement_or_404(queries.load_setup(sess, agreement_id)))
        return setup, queries.audit_log(sess, agreement_id, AUDIT_LIMIT)


@app.get("/agreements/{agreement_id}", response_class=HTMLResponse, dependencies=[CanRead])
def setup_page(request: Request, agreement_id: str, user: GetUserDep) -> HTMLResponse:
    setup, audit = _load_page(agreement_id)
    waiting = onboarding.queue(security.request_session(request))
    return _render_setup(request, user, setup, _setup_selection(setup), audit=audit, waiting=waiting)


def _your_changes(current: dict[str, Any], form: dict[str, str]) -> list[str]:
    """What a refused form would have changed against the setup as it is now (so it can be redone)."""
    now = {k: ("1" if v else "") if k == "book_without_attachment" else str(v) for k, v in current.items()}
    mapped = ("cat_account__", "cat_vat__", "pm_account__")
    mine = {k: v for k, v in form.items() if k in SETUP_FIELDS or k.startswith(mapped)}
    mine["book_without_attachment"] = "1" if form.get("book_without_attachment") in ("1", "on", "true") else ""
    return [
        f"{key.replace('__', ' ')}: {now.get(key) or '—'} → {value or '—'}"
        for key, value in sorted(mine.items())
        if value != queries.KEEP and value != now.get(key, "")
    ]


def _conflict_errors(conflict: queries.SetupChanged, setup: queries.Setup, form: dict[str, str]) -> list[str]:
    errors = [
        "Someone saved this setup after you opened the page, so nothing of yours was saved (it would have "
        "overwritten their change). The form now shows the current setup: make your changes again."
    ]
    for change in conflict.changes:
        lines = _change_lines(change["before"], change["after"]) or ["no changes"]
        errors.append(f"Changed by {change['actor']} at {_dt(change['at'])}: " + "; ".join(lines))
    if not conflict.changes:
        errors.append(
            "It was changed outside this page (for example by loading the agreements file), or the form "
            "did not say which version it was made from."
        )
    mine = _your_changes(_setup_selection(setup), form)
    if mine:
        errors.append("Your changes, not saved: " + "; ".join(mine))
    return errors


def _save_setup(agreement_id: str, form: dict[str, str], actor: str) -> dict[str, Any]:
    """Check the form's version, parse (keeping what the form could not show), store and audit."""
    with session() as sess:
        setup = _agreement_or_404(queries.load_setup(sess, agreement_id))
        version = form.get("version") or ""
        if version != queries.setup_version(setup.agreement):  # stale (or no) version: refuse before parsing
            since = None
            with contextlib.suppress(ValueError):
                since = datetime.fromisoformat(version) if version else None
            conflict = queries.SetupChanged(
                queries.changes_since(sess, agreement_id, since) if since else [],
                queries.setup_version(setup.agreement),
            )
            return {"setup": setup, "conflict": conflict}
        parsed, kept = queries.parse_with_kept(setup, form)
        if parsed.errors:
            return {"setup": setup, "parsed": parsed, "kept": kept}
        try:
            gaps = queries.save_setup(sess, setup, parsed, actor=actor, version=version)
        except queries.SetupChanged as conflict:  # another save won the race after the check above
            return {"setup": setup, "conflict": conflict}
        return {"setup": setup, "parsed": parsed, "kept": kept, "gaps": gaps}


@app.post("/agreements/{agreement_id}", response_class=HTMLResponse, dependencies=[CanEdit])
async def save_setup(request: Request, agreement_id: str, user: GetUserDep) -> Response:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    done = await run_in_threadpool(_save_setup, agreement_id, form, user.get_name())
    if "conflict" in done:
        setup, audit = await run_in_threadpool(_load_page, agreement_id)
        errors = _conflict_errors(done["conflict"], setup, form)
        return _render_setup(request, user, setup, _setup_selection(setup), errors, status_code=409, audit=audit)
    parsed, kept = done["parsed"], done["kept"]
    if parsed.errors:
        fresh, audit = await run_in_threadpool(_load_page, agreement_id)
        done["setup"].suggested = fresh.suggested  # still marked: a refused save stored none of them
        sel = dict(form)
        sel["book_without_attachment"] = parsed.values.get("book_without_attachment", False)
        return _render_setup(
            request,
            user,
            done["setup"],
            sel,
            parsed.errors,
            status_code=400,
            version=form.get("version", ""),
            audit=audit,
        )
    gaps = done["gaps"]
    msg = "Saved."
    if kept:
        msg += " " + " ".join(f"Kept: {k.text}: fix or remove it explicitly." for k in kept)
    msg += f" {len(gaps)} mapping gap(s) remain." if gaps else " No mapping gaps."
    return _redirect(request, f"/agreements/{agreement_id}", msg)


@app.post("/agreements/{agreement_id}/refresh", dependencies=[CanTriggerRefresh])
async def refresh_master_data(request: Request, agreement_id: str, user: GetUserDep) -> Response:
    """The refresh button: a ``roger_master_data`` run for this agreement, followed on the progress page."""

    def exists() -> bool:
        with session() as sess:
            return queries.load_setup(sess, agreement_id) is not None

    if not await run_in_threadpool(exists):
        raise HTTPException(404, "No such agreement")
    note: str | None
    try:
        run_id = await run_in_threadpool(trigger_master_data_refresh, agreement_id, user)
    except Exception as exc:  # DAG not parsed yet, run id clash, …: tell the user, keep the page
        run_id, note = None, f"could not start: {exc}"
    else:
        note = None

    def audit() -> None:
        with session() as sess:
            status = sess.get(models.AgreementStatus, agreement_id)
            queries.record(
                sess,
                agreement_id,
                user.get_name(),
                "refresh",
                target=run_id,
                note=note,
                before={"master data from": _dt(status.master_data_at if status else None)},
                after={"refresh run": run_id} if run_id else {},
            )

    await run_in_threadpool(audit)
    if run_id is None:
        return _redirect(
            request,
            f"/agreements/{agreement_id}",
            f"Could not start {MASTER_DATA_DAG}: {(note or '')[len('could not start: ') :]}. "
            "“Fetch here now” fetches the data without it.",
        )
    return RedirectResponse(_progress_url(request, agreement_id, run_id), status_code=303)


@app.post("/agreements/{agreement_id}/fetch", dependencies=[CanTriggerRefresh])
async def fetch_master_data(request: Request, agreement_id: str, user: GetUserDep) -> Response:
    """ "Fetch here now": the api-server fetches this agreement's master data itself (no scheduler needed)."""

    def start() -> str | None:
        with session() as sess:
            if queries.load_setup(sess, agreement_id) is None:
                return None
        return fetching.start_direct(agreement_id, user.get_name(), "fetched here from the setup page")

    run_id = await run_in_threadpool(start)
    if run_id is None:
        raise HTTPException(404, "No such agreement")
    return RedirectResponse(_progress_url(request, agreement_id, run_id), status_code=303)


AFTER_CONNECT = "connect"
PROGRESS_EVERY = {True: 1, False: 2}  # seconds between the page's looks: a direct fetch, a DAG run


def _progress_url(request: Request, agreement_id: str, run_id: str, after: str = "") -> str:
    query = urlencode({"run": run_id, **({"after": after} if after else {})})
    return f"{_base(request)}/agreements/{agreement_id}/progress?{query}"


def _stages(direct: bool, seen: fetching.Seen) -> list[tuple[str, str]]:
    """The fetch's stages as the page lists them, each past, now or still to come."""
    names = ([] if direct else [fetching.Progress.QUEUED]) + [fetching.Progress.RUNNING]
    names.append(fetching.Progress.FAILED if seen.progress == fetching.Progress.FAILED else fetching.Progress.SUCCESS)
    now = names.index(seen.progress) if seen.progress in names else 0
    return [(str(n), "past" if i < now else "now" if i == now else "") for i, n in enumerate(names)]


@app.get("/agreements/{agreement_id}/progress", response_class=HTMLResponse, dependencies=[CanRead])
def fetch_progress(request: Request, agreement_id: str, user: GetUserDep, run: str = "", after: str = "") -> Response:
    """A fetch's progress; once it succeeded, on to the setup page (after connecting a client: to map and save)."""
    with session() as sess:
        setup = _agreement_or_404(queries.load_setup(sess, agreement_id))
    seen = fetching.progress(agreement_id, run[:255])
    if seen.progress == fetching.Progress.SUCCESS:
        msg = f"Master data fetched. {seen.text}"
        if after == AFTER_CONNECT:
            waiting = onboarding.queue(security.request_session(request))
            following = (
                f"Next: {waiting[0].company_name or waiting[0].company_id} ({len(waiting)} waiting), with "
                "“Connect another client”, straight to e-conomic."
                if waiting
                else "To add the next client: “Add a client”."
            )
            msg = (
                f"Connected, and the master data fetched: {seen.text} Check the prerequisites and the suggested "
                f"mappings below, then SAVE. {following}"
            )
        return _redirect(request, f"/agreements/{agreement_id}", msg)
    direct = fetching.is_direct(run)
    return render(
        request,
        "progress.html",
        user=user,
        agreement=setup.agreement,
        agreement_id=agreement_id,
        agreement_name=setup.agreement.name,
        seen=seen,
        run_id=run,
        direct=direct,
        stages=_stages(direct, seen),
        every=PROGRESS_EVERY[direct],
        master_dag=MASTER_DATA_DAG,
    )


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
def bills_page(
    request: Request, agreement_id: str, user: GetUserDep, state: str = "", q: str = "", page: int = 1
) -> HTMLResponse:
    state = state if state in queries.BILL_STATES else ""
    with session() as sess:
        setup = _agreement_or_404(queries.load_setup(sess, agreement_id))
        rows, total, states = queries.bill_log(sess, agreement_id, state, q, page, PER_PAGE)
    pages = max(1, -(-total // PER_PAGE))
    return render(
        request,
        "bills.html",
        user=user,
        agreement=setup.agreement,
        agreement_id=agreement_id,
        agreement_name=setup.agreement.name,
        rows=rows,
        total=total,
        page=max(1, page),
        pages=pages,
        states=states,
        state=state,
        q=q,
        all_states=queries.BILL_STATES,
        explain=queries.STATE_EXPLAINED,
        resync_states=queries.RESYNC_STATES,
        page_url=_page_url(request, f"/agreements/{agreement_id}/bills", state=state, q=q),
    )


@app.post("/agreements/{agreement_id}/bills/resync-quarantined", response_class=HTMLResponse, dependencies=[CanEdit])
async def resync_quarantined(request: Request, agreement_id: str, user: GetUserDep) -> Response:
    """Asks first (a page with the number of bills), then re-syncs them all when confirmed."""
    form = await request.form()
    back = _bill_filter(form)
    confirmed = form.get("confirm") == "yes"
    expected = str(form.get("expected") or "")

    def work() -> tuple[queries.Setup, int, bool]:
        with session() as sess:
            setup = _agreement_or_404(queries.load_setup(sess, agreement_id))
            waiting = (
                sess.scalar(
                    select(func.count())
                    .select_from(models.StagedBill)
                    .where(
                        models.StagedBill.agreement_id == agreement_id, models.StagedBill.state == BillState.QUARANTINED
                    )
                )
                or 0
            )
            if not confirmed or not waiting or (expected and expected != str(waiting)):
                return setup, waiting, False
            return setup, queries.resync_quarantined(sess, agreement_id, actor=user.get_name()), True

    setup, count, done = await run_in_threadpool(work)
    path = f"/agreements/{agreement_id}/bills"
    if done:
        return _redirect(
            request, path, f"{count} quarantined bill(s) set back to new: the next bills run re-judges them.", **back
        )
    if not count:
        return _redirect(request, path, "No bill is quarantined: nothing to re-sync.", **back)
    note = f"The number of quarantined bills changed to {count} since you asked: confirm again." if confirmed else ""
    return render(
        request,
        "confirm.html",
        user=user,
        agreement=setup.agreement,
        agreement_id=agreement_id,
        agreement_name=setup.agreement.name,
        count=count,
        note=note,
        back=_page_url(request, path, state=back["state"], q=back["q"])(int(back["page"] or 1)),
        **back,
    )


def _resync_one(request: Request, agreement_id: str, bill_id: str, user: BaseUser, back: dict[str, str]) -> Response:
    with session() as sess:
        _agreement_or_404(queries.load_setup(sess, agreement_id))
        before = queries.resync_bill(sess, agreement_id, bill_id, actor=user.get_name())
    if before is None:
        raise HTTPException(404, "No such bill")
    path = f"/agreements/{agreement_id}/bills"
    if before not in queries.RESYNC_STATES:
        return _redirect(
            request,
            path,
            f"Bill {bill_id} is {before}: re-sync would change nothing for it (only quarantined bills are re-synced).",
            **back,
        )
    return _redirect(
        request,
        path,
        f"Bill {bill_id} set back to new: the next bills run re-judges it (its ledger rows stay).",
        **back,
    )


@app.post("/agreements/{agreement_id}/bills/resync", dependencies=[CanEdit])
async def resync_bill_form(request: Request, agreement_id: str, user: GetUserDep) -> Response:
    """Re-sync one bill; its id comes in the form body (a Roger id may hold ``/``, which a path cannot)."""
    form = await request.form()
    bill_id = str(form.get("bill_id") or "")
    if not bill_id:
        raise HTTPException(400, "No bill given")
    return await run_in_threadpool(_resync_one, request, agreement_id, bill_id, user, _bill_filter(form))


@app.post("/agreements/{agreement_id}/bills/{bill_id:path}/resync", dependencies=[CanEdit])
def resync_bill(request: Request, agreement_id: str, bill_id: str, user: GetUserDep) -> Response:
    """The older address (an id in the path): kept for links and scripts that use it."""
    return _resync_one(request, agreement_id, bill_id, user, {})


# ------------------------------------------------------------------------------------------------ bulk CSV import

IMPORT = """{% extends "layout.html" %}{% block body %}
<h1>Add clients from a CSV file</h1>
<p>One client a row: <code>roger_company_id</code>, <code>roger_token_ref</code>, <code>economic_token_ref</code>
(references such as <code>env:VARIABLE</code> or <code>conn:CONNECTION_ID</code>, never the tokens themselves), and
optionally <code>id</code>, <code>name</code>, <code>economic_agreement_number</code>, <code>invoice_journal</code>,
<code>payment_journal</code>. Each row is created or refused on its own, with the reason; existing agreements are
never changed. The new agreements need their master data refreshed and their mappings saved before they book.</p>
{% if errors %}<div class="errors"><strong>Nothing imported:</strong><ul class="plain">{% for e in errors %}
<li>{{ e }}</li>{% endfor %}</ul></div>{% endif %}
{% if results is not none %}<h2>{{ done }} of {{ results | length }} row(s) {{ verb }}</h2>
<div class="scroll"><table><thead><tr><th>Line</th><th>Agreement</th><th>Roger company</th><th>Result</th>
<th>Reason</th></tr></thead><tbody>{% for r in results %}<tr class="import-{{ r.outcome | replace(' ', '-') }}">
<td class="num">{{ r.line }}</td><td>{% if r.outcome == "created" %}<a href="{{ base }}/agreements/{{
r.agreement_id | urlencode }}">{{ r.agreement_id }}</a>{% else %}{{ r.agreement_id or "—" }}{% endif %}</td>
<td>{{ r.roger_company_id or "—" }}</td><td><span class="badge {{ 'failed' if r.outcome == 'refused' else 'ok' }}">
{{ r.outcome }}</span></td><td>{{ r.reason or "—" }}</td></tr>{% endfor %}</tbody></table></div>{% endif %}
{% if can_edit %}<form method="post" action="{{ base }}/import" enctype="multipart/form-data">{{ csrf_input }}
<div class="grid"><label>CSV file</label><input type="file" name="file" accept=".csv,text/csv" required>
<label>Invoice journal / payment journal</label><div><input name="invoice_journal" size="5" inputmode="numeric">
<input name="payment_journal" size="5" inputmode="numeric"> <span class="muted">for rows that name none</span></div>
<label>Only check</label><div><input type="checkbox" name="dry_run" value="1"> <span class="muted">store
nothing</span></div></div><p><button type="submit">Import</button></p></form>
{% else %}<p class="muted">Read only: you may not add clients.</p>{% endif %}
{% endblock %}"""
assert isinstance(templates.loader, DictLoader)
templates.loader = DictLoader({**templates.loader.mapping, "import.html": IMPORT})
IMPORT_MAX_BYTES = 2_000_000


def _import_rows(
    data: bytes, filename: str, defaults: dict[str, Any], dry_run: bool, actor: str
) -> list[csv_import.RowResult]:
    rows = csv_import.read_rows(data, filename)
    with session() as sess:
        results = csv_import.import_rows(sess, rows, defaults, onboarding.connection_password, dry_run)
        config.record_imported(sess, results, filename, actor)
    return results


@app.get("/import", response_class=HTMLResponse, dependencies=[CanRead])
def import_page(request: Request, user: GetUserDep) -> HTMLResponse:
    return render(request, "import.html", user=user, results=None, errors=[])


@app.post("/import", response_class=HTMLResponse, dependencies=[CanEdit])
async def import_csv(request: Request, user: GetUserDep) -> HTMLResponse:
    """A result per row; a file refused as a whole (bad header, too big, not UTF-8) stores nothing."""
    form = await request.form()
    upload = form.get("file")
    data = await upload.read(IMPORT_MAX_BYTES + 1) if isinstance(upload, UploadFile) else b""
    filename = str(getattr(upload, "filename", "") or "upload.csv")[:100]
    errors: list[str] = []
    journals: dict[str, int] = {}
    for field, key in (("invoice_journal", "supplier_invoices"), ("payment_journal", "supplier_payments")):
        text = str(form.get(field) or "").strip()
        if text and not text.isdigit():
            errors.append(f"{field.replace('_', ' ').capitalize()}: '{text[:20]}' is not a number")
        elif text:
            journals[key] = int(text)
    if not data:
        errors.append("Choose a CSV file to import")
    elif len(data) > IMPORT_MAX_BYTES:
        errors.append(f"The file is larger than {IMPORT_MAX_BYTES // 1_000_000} MB: split it")
    dry_run = form.get("dry_run") == "1"
    results = None
    if not errors:
        try:
            results = await run_in_threadpool(
                _import_rows, data, filename, {"journals": journals} if journals else {}, dry_run, user.get_name()
            )
        except ConfigError as exc:
            errors.append(str(exc))
    done = sum(r.outcome != "refused" for r in results or [])
    return render(
        request,
        "import.html",
        status_code=400 if errors else 200,
        user=user,
        results=results,
        errors=errors,
        done=done,
        verb="would be created (nothing stored)" if dry_run else "created",
    )


# ------------------------------------------------------------------------------------------------ adding a client
# The flow and its settings: roger_economic_ui.onboarding. Plain forms and redirects (the pages run no script).

ADD_CLIENT_RIGHTS = [CanEdit, CanAddConnection]


def _add_client_page(
    request: Request,
    user: BaseUser | None,
    errors: list[str] | None = None,
    company_id: str = "",
    status_code: int = 200,
    mode: str = "",
    waiting: list[onboarding.Queued] | None = None,
    added: onboarding.Queued | None = None,
) -> HTMLResponse:
    return render(
        request,
        "add_client.html",
        status_code=status_code,
        user=user,
        errors=errors or [],
        company_id=company_id,
        mode=mode if mode in set(onboarding.Mode) else "",
        waiting=waiting or [],
        added=added,
        queue_hours=onboarding.QUEUE_TTL // 3600,
    )


@app.get("/clients/new", response_class=HTMLResponse, dependencies=ADD_CLIENT_RIGHTS)
def add_client(request: Request, user: GetUserDep, mode: str = "") -> HTMLResponse:
    """One company or several: asked first, unless this login has a firm's clients waiting (their list then)."""
    waiting = onboarding.queue(security.request_session(request))
    if not mode and waiting:
        mode = onboarding.Mode.SEVERAL
    return _add_client_page(request, user, mode=mode, waiting=waiting)


@app.post("/clients/new", response_class=HTMLResponse, dependencies=ADD_CLIENT_RIGHTS)
async def add_client_roger(request: Request, user: GetUserDep) -> HTMLResponse:
    """Step 1: check the Roger company and token live; one company: its name and CONNECT E-CONOMIC; several: the
    company added to this login's list of clients to connect."""
    form = await request.form()
    company_id = str(form.get("company_id") or "").strip()
    token = str(form.get("roger_token") or "").strip()
    login = security.request_session(request)
    if form.get("mode") == onboarding.Mode.SEVERAL:

        def add() -> onboarding.Queued:
            with session() as sess:
                taken = onboarding.roger_companies_taken(sess)
            return onboarding.enqueue(login, company_id, token, taken)

        added, errors = None, []
        try:
            added = await run_in_threadpool(add)
        except onboarding.OnboardingError as exc:
            errors = [str(exc)]
        waiting = await run_in_threadpool(onboarding.queue, login)
        return _add_client_page(
            request,
            user,
            errors,
            "" if added else company_id[:64],
            status_code=400 if errors else 200,
            mode=onboarding.Mode.SEVERAL,
            waiting=waiting,
            added=added,
        )
    try:
        pending = await run_in_threadpool(onboarding.start, login, company_id, token)
    except onboarding.OnboardingError as exc:
        return _add_client_page(request, user, [str(exc)], company_id[:64], status_code=400, mode=onboarding.Mode.ONE)
    return render(request, "connect.html", user=user, pending=pending, minutes=onboarding.STATE_TTL // 60)


@app.get("/clients/next", dependencies=ADD_CLIENT_RIGHTS)
async def add_client_next(request: Request, user: GetUserDep) -> Response:
    """Several companies: the next waiting client of this login, off to e-conomic at once under a fresh one-time
    state (a link, as CONNECT E-CONOMIC is: the CSP's ``form-action`` stops a form that redirects elsewhere)."""

    def target() -> str | None:
        onboarding.app_public_token()  # a missing setting stops here, before a state is made
        pending = onboarding.take_next(security.request_session(request))
        if pending is None:
            return None
        return onboarding.install_url(pending.state, _callback_url(request))

    try:
        url = await run_in_threadpool(target)
    except onboarding.OnboardingError as exc:
        return _redirect(request, "/clients/new", str(exc), mode=onboarding.Mode.SEVERAL.value)
    if url is None:
        return _redirect(
            request,
            "/clients/new",
            "No client of yours is waiting to be connected: add their Roger companies first.",
            mode=onboarding.Mode.SEVERAL.value,
        )
    return RedirectResponse(url, status_code=303)


def _callback_url(request: Request) -> str:
    return str(request.url.replace(path=f"{_base(request)}/clients/callback", query=""))


@app.get("/clients/connect", dependencies=ADD_CLIENT_RIGHTS)
async def add_client_connect(request: Request, user: GetUserDep, state: str = "") -> Response:
    """Step 2: off to e-conomic's installation URL, coming back to the callback with the one-time state.

    A link, not a form: the pages' CSP (``form-action 'self'``) stops a form whose answer redirects elsewhere."""

    def target() -> str | None:
        if onboarding.pending(security.request_session(request), state) is None:
            return None
        return onboarding.install_url(state, _callback_url(request))

    try:
        url = await run_in_threadpool(target)
    except onboarding.OnboardingError as exc:
        return _redirect(request, "/clients/new", str(exc))
    if url is None:
        return _redirect(
            request, "/clients/new", "This connection was not started from your login, or it expired: start again."
        )
    return RedirectResponse(url, status_code=303)


@app.get("/clients/callback", dependencies=ADD_CLIENT_RIGHTS)
def add_client_callback(request: Request, user: GetUserDep, state: str = "", token: str = "") -> Response:
    """Step 3, where e-conomic sends the browser back with ``token``: answered at once with a redirect to a URL
    without it (the agreement's setup page, or step 1 with the reason)."""
    try:
        with session() as sess:
            aid = onboarding.finish(sess, security.request_session(request), state, token)
            queries.record(
                sess,
                aid,
                user.get_name(),
                "add_client",
                target=aid,
                after={
                    "Roger company": sess.get_one(models.Agreement, aid).roger_company_id,
                    "e-conomic agreement": sess.get_one(models.Agreement, aid).economic_agreement_number,
                },
            )
    except onboarding.OnboardingError as exc:
        return _redirect(request, "/clients/new", str(exc))
    run_id = fetching.start_direct(aid, user.get_name(), "fetched on connecting the client")
    return RedirectResponse(_progress_url(request, aid, run_id, AFTER_CONNECT), status_code=303)


@app.post("/agreements/{agreement_id}/prerequisites", dependencies=[CanEdit])
def check_prerequisites(request: Request, agreement_id: str, user: GetUserDep) -> Response:
    """ "Check again": read /self live with the agreement's tokens and record API access and Indscanning."""
    with session() as sess:
        _agreement_or_404(queries.load_setup(sess, agreement_id))
        me = onboarding.check_prerequisites(sess, agreement_id)
        status = sess.get_one(models.AgreementStatus, agreement_id)  # check_prerequisites wrote it
        found = {"API access": _yesno(status.api_access), "Indscanning": _yesno(status.scanning_addon)}
        queries.record(sess, agreement_id, user.get_name(), "check_prerequisites", after=found)
    if me is None:
        msg = "e-conomic refused this agreement's token: API access ✗ (see the reason below)."
    else:
        msg = f"Checked: API access ✓, Indscanning {'✓' if found['Indscanning'] == 'yes' else '✗'}."
    return _redirect(request, f"/agreements/{agreement_id}", msg)


@app.post(
    "/agreements/{agreement_id}/deactivate",
    response_class=HTMLResponse,
    dependencies=[CanEdit, Depends(requires_access_connection("DELETE"))],  # it deletes the grant connection
)
async def remove_client(request: Request, agreement_id: str, user: GetUserDep) -> Response:
    """Removing a client: asks first, then the agreement inactive (history kept) and its grant connection gone."""
    confirmed = (await request.form()).get("confirm") == "yes"

    def work() -> tuple[queries.Setup, str | None, bool]:
        with session() as sess:
            setup = _agreement_or_404(queries.load_setup(sess, agreement_id))
            ref = setup.agreement.economic_token_ref
            conn_id = ref[5:] if ref.startswith("conn:") else None
            if not confirmed:
                return setup, conn_id, False
            deleted, conn_id = onboarding.deactivate(sess, agreement_id)
            queries.record(
                sess,
                agreement_id,
                user.get_name(),
                "remove_client",
                target=conn_id,
                before={"active": True},
                after={"active": False, "grant connection deleted": deleted},
            )
            return setup, conn_id, True

    setup, conn_id, done = await run_in_threadpool(work)
    if done:
        return _redirect(
            request,
            "/",
            f"{setup.agreement.name} removed: inactive, its history kept, its grant "
            f"connection deleted. Revoke the app in e-conomic too (Settings → Apps).",
        )
    return render(
        request,
        "remove.html",
        user=user,
        agreement=setup.agreement,
        agreement_id=agreement_id,
        agreement_name=setup.agreement.name,
        conn_id=conn_id,
    )
