"""A stateful stand-in for e-conomic's REST API (https://restapi.e-conomic.com), per agreement.

Run it with ``python -m sandboxes.economic --port 8082 --agreements 3 --token-prefix sbx-
--app-secret sbx-app-secret [--rate-limit N] [--host 127.0.0.1] [--base-url URL]``.
Agreement *i* (1..agreements) is e-conomic agreement ``world.agreement_number(i)``
(700000 + i) and answers to ``X-AgreementGrantToken: world.grant_token(i, prefix)``
together with ``X-AppSecretToken: <app secret>``; its chart of accounts, journals,
years, suppliers etc. come from :mod:`sandboxes.world` the first time the token is used.

API (JSON only; 415 for other bodies, multipart for attachments):
``GET /self``, ``/accounts[/{n}]``, ``/vat-accounts``, ``/currencies``, ``/journals[/{n}]``,
``/accounting-years[/{year}[/periods|/entries]]`` (``/`` in a year written ``_6_``; ``/entries``: the
year's booked entries, a shape *assumed*, not in ../shared), ``/suppliers[/{n}]``,
``POST /suppliers``, ``/supplier-groups``, ``/vat-zones``, ``/payment-terms``, ``/payment-types``,
``POST /journals/{n}/vouchers`` (object or array, atomic), ``GET /journals/{n}/vouchers/{year}-{no}``,
``GET /journals/{n}/entries[/{entry}]`` (drafts only), ``DELETE /journals/{n}/entries/{entry}``,
``GET .../vouchers/{year}-{no}/attachment``, ``POST|PATCH .../attachment/file``.
Collections page with ``skippages``/``pagesize`` (default 20, at most 1000) and filter with
``filter=field$op:value`` (``$eq $ne $gt $gte $lt $lte $like $in $nin``, joined by ``$and:``/``$or:``,
parentheses, dotted fields; in a value ``$$ $( $) $*`` are the characters themselves). An
``Idempotency-Key`` on a non-GET caches a successful answer for an hour (replay: ``X-ResultFromCache: true``;
same key on another URL: 400 ``URLChanged``); error answers are not cached, so a request that failed may be
retried with the same key.

Control endpoints (no tokens; JSON bodies; ``agreement`` is the agreement number, e.g. 700001):

- ``GET /_control/health`` -> ``{"ok": true}``; ``POST|GET|DELETE /_control/faults`` (see ``sandboxes.faults``).
- ``POST /_control/reset`` ``{}``: forget all agreements, revocations, the clock offset and armed faults.
- ``POST /_control/revoke`` / ``/_control/unrevoke`` ``{"agreement": 700001}``: the grant answers 401 / works again.
- ``POST /_control/revoke`` ``{"token": "<a grant the approval page issued>"}``: that one grant answers 401.
- ``GET|POST /_control/approval`` ``{"agreement": 700003}``: which agreement the approval page grants (the one
  "logged in"; default agreement 1) -> ``{agreement, app, appPublicToken, grants: [{agreement, revoked}]}``.
- ``GET|POST /secure/api1/requestaccess.aspx?appPublicToken=...&redirectUrl=...`` (no tokens, HTML): the
  approval page (README "Connection"), see ``sandboxes.economic.approval``.
- ``POST /_control/clock`` ``{"offset_seconds": 3700}`` (absolute) or ``{"advance_seconds": N}``: shifts
  the clock the idempotency cache expires by; answers ``{"offset_seconds", "now"}``.
- ``GET /_control/state?agreement=700001`` (or ``POST /_control/state {"agreement": 700001}``):
  ``{agreement, revoked, vouchers: [{journal, accountingYear, voucherNumber, status (draft|booked|deleted),
  payload (as posted), entries: [entry answer + status], attachment: null | {pages, bytes, createdAt,
  files: [{filename, type, bytes, pages}]}}], entries: {draft, booked, deleted}, suppliers: [...],
  accountingYears: [... + barredPeriods], counters: {vouchers|attachments|suppliers|entries|reads:
  {GET|POST|PATCH|DELETE: n}}, idempotencyKeys}``.
- ``POST /_control/accounting-years`` ``{"agreement": 700001, "year": "2024", "closed": false}``.
- ``POST /_control/periods`` ``{"agreement": 700001, "year": "2025", "period": 3, "barred": true}``.
- ``POST /_control/accounts`` ``{"agreement": 700001, "accountNumber": 2750, "barred": true}``
  (also ``blockDirectEntries``, ``accountType``).
- ``POST /_control/book`` ``{"agreement": 700001, "journal": 2}``: books the journal's drafts, as the
  accountant does (they leave ``/journals/{n}/entries`` for ``/accounting-years/{year}/entries``; vouchers
  stay readable) -> ``{booked_entries, booked_vouchers, ...}``.

- ``POST /_control/payment-types`` ``{"agreement": 700001, "drop": [17]}`` (also ``"add"``, or ``"numbers"``
  for the whole list): which of the documented payment types (the README table) the agreement has; ``GET
  /payment-types`` lists them and a voucher with another number answers ``E07520 Payment type N not found``.
- ``GET|POST /_control/rate-limit`` ``{"rate": 5}``: each agreement's token bucket (N requests a second, a
  burst of N; 429 ``E00429`` with ``Retry-After`` in whole seconds), ``{}`` for none. The fair-use bucket's
  size is unpublished (README "Limits"): any figure here is *assumed*.
- ``GET|POST|DELETE /_control/latency``, ``GET|DELETE /_control/timing``: answer latency per call and the
  per-agreement timing of the answers (``sandboxes.httpbase.Latency``; ``--latency economic`` at start).
- ``GET|POST|DELETE /_control/conventions`` ``{"credit_sign": "-", "scanning_module_name": "Indscanning",
  "vat_zones": {"1": "Domestic", ...}}``: the *assumed* conventions (no e-conomic document fixes them), so a
  test can make the sandbox disagree with the client; ``DELETE`` (and reset) restores the defaults.

Payment types, their numbers and detail fields come from the README table "Payment types" and the voucher
schema's ``oneOf`` (both read at run time, see ``sandboxes.economic.validation``), never from the client.

Unknown agreements or objects in a control call answer 404 ``{"error": ...}``.
"""
