"""The e-conomic sandbox, driven over real HTTP as the client will drive it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft3Validator

from sandboxes import world
from sandboxes.economic.validation import schema_dir
from sandboxes.httpbase import SandboxProcess

AGREEMENT = world.agreement_number(1)
NO_SCANNING = 10  # world.profile(10).scanning_addon is False
SPLIT_YEAR = 2  # world.profile(2).split_year is True


@pytest.fixture(scope="module")
def sandbox():
    with SandboxProcess(
        "sandboxes.economic", ["--agreements", "10", "--token-prefix", "sbx-", "--app-secret", "sbx-app-secret"]
    ) as proc:
        yield proc


@pytest.fixture(autouse=True)
def clean(sandbox):
    sandbox.control("POST", "reset", {})
    yield


def client(sandbox: SandboxProcess, i: int = 1) -> requests.Session:
    sess = requests.Session()
    sess.headers.update({"X-AppSecretToken": "sbx-app-secret", "X-AgreementGrantToken": world.grant_token(i)})
    sess.base = sandbox.base_url  # type: ignore[attr-defined]
    return sess


def url(sess: requests.Session, path: str) -> str:
    return f"{sess.base}{path}"  # type: ignore[attr-defined]


def invoice(
    text: str = "Dansk Kontorforsyning faktura 2025-0042 [bill_01J9ZK3X4Q]",
    amount: Any = -1250.00,
    day: str = "2025-03-04",
    year: str | None = "2025",
    **extra: Any,
) -> dict[str, Any]:
    entry = {
        "supplier": {"supplierNumber": 1},
        "amount": amount,
        "contraAccount": {"accountNumber": 2750},
        "contraVatAccount": {"vatCode": "I25"},
        "contraVatAmount": -250.00,
        "currency": {"code": "DKK"},
        "date": day,
        "dueDate": "2025-03-18",
        "supplierInvoiceNumber": "2025-0042",
        "text": text,
        "paymentDetails": {
            "paymentType": {"paymentTypeNumber": 1, "fiSupplierNo": "85123456", "ocrLine": "000000012345678"}
        },
    }
    entry.update(extra)
    return {"accountingYear": {"year": year} if year else {}, "entries": {"supplierInvoices": [entry]}}


def payment(amount: Any = 1250.00, day: str = "2025-03-20", account: int = 5820) -> dict[str, Any]:
    return {
        "accountingYear": {"year": "2025"},
        "entries": {
            "supplierPayments": [
                {
                    "supplier": {"supplierNumber": 1},
                    "amount": amount,
                    "contraAccount": {"accountNumber": account},
                    "currency": {"code": "DKK"},
                    "date": day,
                    "supplierInvoiceNumber": "2025-0042",
                    "text": "Betaling 2025-0042 [bill_01J9ZK3X4Q]",
                }
            ]
        },
    }


def state(sandbox: SandboxProcess, agreement: int = AGREEMENT) -> dict[str, Any]:
    return sandbox.control("GET", "state", {"agreement": agreement})


def entry_errors(body: dict[str, Any], kind: str = "supplierInvoices") -> dict[str, Any]:
    errors = body["errors"]
    tree = errors[0] if isinstance(errors, list) else errors
    return tree["entries"][kind][0]


# --------------------------------------------------------------------------- auth and transport


def test_requests_without_or_with_a_wrong_token_are_refused_with_401(sandbox):
    base = sandbox.base_url
    assert requests.get(f"{base}/self").status_code == 401
    wrong_secret = requests.get(
        f"{base}/self", headers={"X-AppSecretToken": "nope", "X-AgreementGrantToken": world.grant_token(1)}
    )
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["httpStatusCode"] == 401
    for token in ("sbx-grant-9999", "other-grant-0001", world.grant_token(11)):
        resp = requests.get(
            f"{base}/self", headers={"X-AppSecretToken": "sbx-app-secret", "X-AgreementGrantToken": token}
        )
        assert resp.status_code == 401, token
    sess = client(sandbox)
    assert sess.get(url(sess, "/self")).json()["agreementNumber"] == AGREEMENT


def test_a_revoked_grant_answers_401_until_unrevoked(sandbox):
    sess = client(sandbox)
    sandbox.control("POST", "revoke", {"agreement": AGREEMENT})
    assert sess.get(url(sess, "/self")).status_code == 401
    assert client(sandbox, 2).get(url(sess, "/self")).status_code == 200
    sandbox.control("POST", "unrevoke", {"agreement": AGREEMENT})
    assert sess.get(url(sess, "/self")).status_code == 200


def test_bodies_other_than_json_are_refused_with_415(sandbox):
    sess = client(sandbox)
    resp = sess.post(
        url(sess, "/journals/2/vouchers"), data=json.dumps(invoice()), headers={"Content-Type": "text/plain"}
    )
    assert resp.status_code == 415
    assert state(sandbox)["vouchers"] == []


def test_self_tells_company_base_currency_and_modules(sandbox):
    sess = client(sandbox)
    me = sess.get(url(sess, "/self")).json()
    assert me["company"]["name"] == world.profile(1).company_name
    assert me["settings"]["baseCurrency"] == "DKK"
    assert {m["name"] for m in me["modules"]} == {world.API_MODULE, world.SCANNING_MODULE}
    other = client(sandbox, NO_SCANNING)
    assert {m["name"] for m in other.get(url(other, "/self")).json()["modules"]} == {world.API_MODULE}


# --------------------------------------------------------------------------- reading


def test_collections_page_with_skippages_and_pagesize(sandbox):
    sess = client(sandbox)
    first = sess.get(url(sess, "/accounts"), params={"pagesize": 10}).json()
    total = len(world.CHART_OF_ACCOUNTS)
    assert first["pagination"]["results"] == total
    assert first["pagination"]["maxPageSizeAllowed"] == 1000
    assert len(first["collection"]) == 10 and "nextPage" in first["pagination"]
    last_skip = (total - 1) // 10
    last = sess.get(url(sess, "/accounts"), params={"pagesize": 10, "skippages": last_skip}).json()
    assert len(last["collection"]) == total - 10 * last_skip
    assert "nextPage" not in last["pagination"]
    walked = []
    skip = 0
    while True:
        page = sess.get(url(sess, "/suppliers"), params={"pagesize": 3, "skippages": skip}).json()
        walked += [s["supplierNumber"] for s in page["collection"]]
        if "nextPage" not in page["pagination"]:
            break
        skip += 1
    assert len(walked) == len(set(walked)) == sum(1 for v in world.VENDORS if v.in_economic != "no")
    default = sess.get(url(sess, "/accounts")).json()
    assert default["pagination"]["pageSize"] == 20
    assert sess.get(url(sess, "/accounts"), params={"pagesize": 1001}).status_code == 400


def test_suppliers_can_be_filtered_by_cvr_and_name(sandbox):
    sess = client(sandbox)
    found = sess.get(url(sess, "/suppliers"), params={"filter": "corporateIdentificationNumber$eq:31245871"}).json()[
        "collection"
    ]
    assert [s["name"] for s in found] == ["Dansk Kontorforsyning ApS"]
    by_name = sess.get(url(sess, "/suppliers"), params={"filter": "name$like:frugt*"}).json()["collection"]
    assert [s["name"] for s in by_name] == ["Frugt til Kontoret ApS"]
    assert "corporateIdentificationNumber" not in by_name[0]  # known by name only
    either = sess.get(
        url(sess, "/suppliers"),
        params={"filter": "supplierNumber$eq:1$or:(supplierNumber$gte:2$and:supplierNumber$lt:3)"},
    )
    assert [s["supplierNumber"] for s in either.json()["collection"]] == [1, 2]
    assert sess.get(url(sess, "/suppliers"), params={"filter": "name$oops:x"}).status_code == 400


def _schema(name: str) -> dict[str, Any]:
    return json.loads((Path(schema_dir()) / f"{name}.schema.json").read_text(encoding="utf-8"))


def test_answers_validate_against_e_conomics_get_schemas(sandbox):
    sess = client(sandbox)
    created = sess.post(url(sess, "/journals/2/vouchers"), json=invoice()).json()
    voucher_path = f"/journals/2/vouchers/2025-{created['voucherNumber']}"
    files = {"file": ("bill.pdf", b"%PDF-1.4 /Type /Page", "application/pdf")}
    assert sess.post(url(sess, f"{voucher_path}/attachment/file"), files=files).status_code == 201
    journal_schema = _schema("journals.journalNumber.get")
    del journal_schema["properties"]["settings"]["properties"]["voucherNumbers"]["properties"]["maximumVoucherNumber"][
        "minimum"
    ]
    checks = {
        "/self": _schema("self.get"),
        "/accounts": _schema("accounts.get"),
        "/accounts/2750": _schema("accounts.accountNumber.get"),
        "/journals": _schema("journals.get"),
        "/journals/2": journal_schema,
        "/accounting-years": _schema("accounting-years.get"),
        "/accounting-years/2025": _schema("accounting-years.accountingYear.get"),
        "/accounting-years/2025/periods": _schema("accounting-years.accountingYear.periods.get"),
        "/suppliers": _schema("suppliers.get"),
        "/suppliers/1": _schema("suppliers.supplierNumber.get"),
        "/vat-accounts": _schema("vat-accounts.get"),
        "/currencies": _schema("currencies.get"),
        "/payment-terms": _schema("payment-terms.get"),
        "/payment-types": _schema("payment-types.get"),
        "/vat-zones": _schema("vat-zones.get"),
        "/journals/2/entries": _schema("journals.journalNumber.entries.get"),
        "/journals/2/entries/1": _schema("journals.journalNumber.entries.entryNumber.get"),
        voucher_path: _schema("journals.journalNumber.vouchers.accountingYear-voucherNumber.get"),
        f"{voucher_path}/attachment": _schema(
            "journals.journalNumber.vouchers.accountingYear-voucherNumber.attachment.get"
        ),
    }
    for path, schema in checks.items():
        resp = sess.get(url(sess, path))
        assert resp.status_code == 200, path
        problems = [e.message for e in Draft3Validator(schema).iter_errors(resp.json())]
        assert problems == [], (path, problems)


def test_split_years_are_addressed_with_6_in_paths(sandbox):
    sess = client(sandbox, SPLIT_YEAR)
    years = [y["year"] for y in sess.get(url(sess, "/accounting-years")).json()["collection"]]
    assert "2025/2026" in years
    year = sess.get(url(sess, "/accounting-years/2025_6_2026")).json()
    assert (year["fromDate"], year["toDate"]) == ("2025-07-01", "2026-06-30")
    periods = sess.get(url(sess, "/accounting-years/2025_6_2026/periods")).json()["collection"]
    assert len(periods) == 12 and periods[0]["fromDate"] == "2025-07-01"
    created = sess.post(url(sess, "/journals/2/vouchers"), json=invoice(day="2025-08-01", year=None)).json()
    assert created["accountingYear"]["year"] == "2025/2026"
    got = sess.get(url(sess, f"/journals/2/vouchers/2025_6_2026-{created['voucherNumber']}"))
    assert got.status_code == 200


# --------------------------------------------------------------------------- vouchers


def test_a_supplier_invoice_and_its_payment_are_created_with_numbers_in_the_journal_range(sandbox):
    sess = client(sandbox)
    resp = sess.post(url(sess, "/journals/1/vouchers"), json=[invoice(), payment()])
    assert resp.status_code == 201
    created = resp.json()
    assert isinstance(created, list) and len(created) == 2
    inv, pay = created
    assert "supplierInvoices" in inv["entries"] and "supplierPayments" in pay["entries"]
    numbers = [v["voucherNumber"] for v in created]
    assert len(set(numbers)) == 2 and all(1 <= n <= 9999 for n in numbers)
    assert all(v["accountingYear"]["year"] == "2025" and v["journal"]["journalNumber"] == 1 for v in created)
    entry = inv["entries"]["supplierInvoices"][0]
    assert entry["journalEntryNumber"] >= 1 and entry["amount"] == -1250
    assert entry["self"].endswith(f"/journals/1/entries/{entry['journalEntryNumber']}")
    single = sess.post(url(sess, "/journals/2/vouchers"), json=invoice())
    assert single.status_code == 201 and isinstance(single.json(), dict)
    assert 10000 <= single.json()["voucherNumber"] <= 19999
    dumped = state(sandbox)
    assert len(dumped["vouchers"]) == 3
    assert dumped["vouchers"][0]["payload"]["entries"]["supplierInvoices"][0]["text"].endswith("[bill_01J9ZK3X4Q]")


def test_schema_violations_are_rejected_with_the_errors_tree_and_nothing_is_created(sandbox):
    sess = client(sandbox)
    bad = invoice(amount=-1.005, day="2025-11-31")
    bad["entries"]["supplierInvoices"][0]["paymentDetails"]["paymentType"]["ocrLine"] = "12345678901234"
    resp = sess.post(url(sess, "/journals/2/vouchers"), json=[invoice(), bad])
    assert resp.status_code == 400
    body = resp.json()
    assert body["message"] == "Validation error." and body["httpStatusCode"] == 400
    assert body["errors"][0]["arrayIndex"] == 1
    entry = entry_errors(body)
    assert entry["arrayIndex"] == 0
    assert entry["amount"]["errors"][0]["errorCode"] == "E06010"
    assert entry["amount"]["errors"][0]["value"] == -1.005
    assert entry["date"]["errors"][0]["propertyName"] == "date"
    assert "paymentType" in entry["paymentDetails"]
    assert state(sandbox)["vouchers"] == []  # the valid voucher in the same call was not created either


def test_a_barred_account_and_a_closed_year_are_rejected(sandbox):
    sess = client(sandbox)
    barred = sess.post(url(sess, "/journals/2/vouchers"), json=invoice(contraAccount={"accountNumber": 2795}))
    assert barred.status_code == 400
    err = entry_errors(barred.json())["contraAccount"]["errors"][0]
    assert (err["errorCode"], err["value"]) == ("E07150", 2795)
    for heading in (2700, 9999, 2796):
        resp = sess.post(url(sess, "/journals/2/vouchers"), json=invoice(contraAccount={"accountNumber": heading}))
        assert resp.status_code == 400, heading
    sandbox.control("POST", "accounts", {"agreement": AGREEMENT, "accountNumber": 2750, "barred": True})
    assert sess.post(url(sess, "/journals/2/vouchers"), json=invoice()).status_code == 400
    sandbox.control("POST", "accounts", {"agreement": AGREEMENT, "accountNumber": 2750, "barred": False})

    closed = sess.post(url(sess, "/journals/2/vouchers"), json=invoice(day="2024-05-02", year="2024"))
    assert closed.status_code == 400
    assert entry_errors(closed.json())["date"]["errors"][0]["errorCode"] == "E04041"
    sandbox.control("POST", "accounting-years", {"agreement": AGREEMENT, "year": "2024", "closed": False})
    assert sess.post(url(sess, "/journals/2/vouchers"), json=invoice(day="2024-05-02", year="2024")).status_code == 201

    sandbox.control("POST", "periods", {"agreement": AGREEMENT, "year": "2025", "period": 3, "barred": True})
    in_barred = sess.post(url(sess, "/journals/2/vouchers"), json=invoice(day="2025-03-04"))
    assert in_barred.status_code == 400
    assert entry_errors(in_barred.json())["date"]["errors"][0]["errorCode"] == "E04041"
    periods = sess.get(url(sess, "/accounting-years/2025/periods")).json()["collection"]
    assert periods[2].get("barred") is True and "barred" not in periods[3]
    wrong_year = sess.post(url(sess, "/journals/2/vouchers"), json=invoice(day="2025-04-04", year="2026"))
    assert wrong_year.status_code == 400 and "accountingYear" in wrong_year.json()["errors"]
    assert len(state(sandbox)["vouchers"]) == 1


def test_a_restricted_journal_rejects_another_entry_type(sandbox):
    sess = client(sandbox)
    resp = sess.post(url(sess, "/journals/2/vouchers"), json=payment())
    assert resp.status_code == 400
    err = entry_errors(resp.json(), "supplierPayments")["entryType"]["errors"][0]
    assert err["value"] == "supplierPayment"
    assert sess.post(url(sess, "/journals/3/vouchers"), json=payment()).status_code == 201
    assert sess.post(url(sess, "/journals/99/vouchers"), json=payment()).status_code == 404


def test_unknown_supplier_vat_code_and_currency_are_rejected(sandbox):
    sess = client(sandbox)
    resp = sess.post(
        url(sess, "/journals/2/vouchers"),
        json=invoice(supplier={"supplierNumber": 999}, contraVatAccount={"vatCode": "XX9"}, currency={"code": "XYZ"}),
    )
    assert resp.status_code == 400
    entry = entry_errors(resp.json())
    assert {"supplier", "contraVatAccount", "currency"} <= set(entry)


# --------------------------------------------------------------------------- idempotency and faults


def test_an_idempotency_key_replays_the_cached_answer_and_refuses_another_url(sandbox):
    sess = client(sandbox)
    first = sess.post(url(sess, "/journals/2/vouchers"), json=[invoice()], headers={"Idempotency-Key": "k-1"})
    again = sess.post(url(sess, "/journals/2/vouchers"), json=[invoice()], headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.headers.get("X-ResultFromCache") == "true"
    assert "X-ResultFromCache" not in first.headers
    assert again.json() == first.json()
    assert len(state(sandbox)["vouchers"]) == 1
    moved = sess.post(url(sess, "/journals/3/vouchers"), json=payment(), headers={"Idempotency-Key": "k-1"})
    assert moved.status_code == 400 and moved.json()["errorCode"] == "URLChanged"
    sandbox.control("POST", "clock", {"offset_seconds": 3601})
    later = sess.post(url(sess, "/journals/2/vouchers"), json=[invoice()], headers={"Idempotency-Key": "k-1"})
    assert later.status_code == 201 and "X-ResultFromCache" not in later.headers
    assert len(state(sandbox)["vouchers"]) == 2


def test_a_lost_answer_replayed_with_the_same_key_creates_nothing_twice(sandbox):
    sess = client(sandbox)
    sandbox.control(
        "POST", "faults", {"kind": "lost_answer", "scope": str(AGREEMENT), "method": "POST", "path": "/vouchers$"}
    )
    with pytest.raises(requests.ConnectionError):
        sess.post(url(sess, "/journals/2/vouchers"), json=[invoice()], headers={"Idempotency-Key": "lost-1"})
    assert len(state(sandbox)["vouchers"]) == 1  # processed, answer lost
    replay = sess.post(url(sess, "/journals/2/vouchers"), json=[invoice()], headers={"Idempotency-Key": "lost-1"})
    assert replay.status_code == 201 and replay.headers["X-ResultFromCache"] == "true"
    assert replay.json()[0]["voucherNumber"] == state(sandbox)["vouchers"][0]["voucherNumber"]
    assert len(state(sandbox)["vouchers"]) == 1
    assert state(sandbox)["counters"]["vouchers"]["POST"] == 2


def test_an_injected_429_carries_retry_after(sandbox):
    sess = client(sandbox)
    sandbox.control(
        "POST",
        "faults",
        {"kind": "status", "status": 429, "retry_after": 7, "scope": str(AGREEMENT), "path": "^/accounts"},
    )
    resp = sess.get(url(sess, "/accounts"))
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
    assert client(sandbox, 2).get(url(sess, "/accounts")).status_code == 200  # other agreements go on
    assert sess.get(url(sess, "/accounts")).status_code == 200


def test_the_optional_rate_limit_answers_429_with_retry_after():
    with SandboxProcess("sandboxes.economic", ["--agreements", "2", "--rate-limit", "5"]) as proc:
        sess = client(proc)
        statuses = [sess.get(url(sess, "/self")) for _ in range(20)]
        limited = [r for r in statuses if r.status_code == 429]
        assert limited and int(limited[0].headers["Retry-After"]) >= 1
        assert client(proc, 2).get(url(sess, "/self")).status_code == 200


# --------------------------------------------------------------------------- entries


def test_entries_are_listed_filtered_and_deleted_and_booking_empties_the_journal(sandbox):
    sess = client(sandbox)
    texts = ["A faktura 1 [bill_01J9AAA]", "B faktura 2 [bill_01J9BBB]", "C faktura 3 [bill_02XXCCC]"]
    created = sess.post(url(sess, "/journals/2/vouchers"), json=[invoice(text=t) for t in texts]).json()
    listing = sess.get(url(sess, "/journals/2/entries")).json()
    assert listing["pagination"]["results"] == 3
    entry = listing["collection"][0]
    assert entry["entryType"] == "supplierInvoice" and entry["supplier"]["supplierNumber"] == 1
    assert entry["voucher"]["voucherNumber"] == created[0]["voucherNumber"]
    found = sess.get(url(sess, "/journals/2/entries"), params={"filter": "text$like:bill_01J9"}).json()
    assert [e["text"] for e in found["collection"]] == texts[:2]
    by_voucher = sess.get(
        url(sess, "/journals/2/entries"),
        params={"filter": f"voucher.voucherNumber$eq:{created[2]['voucherNumber']}$and:supplier.supplierNumber$eq:1"},
    )
    assert [e["text"] for e in by_voucher.json()["collection"]] == texts[2:]

    number = found["collection"][0]["journalEntryNumber"]
    assert sess.get(url(sess, f"/journals/2/entries/{number}")).status_code == 200
    assert sess.delete(url(sess, f"/journals/2/entries/{number}")).status_code == 204
    assert sess.get(url(sess, f"/journals/2/entries/{number}")).status_code == 404
    assert sess.delete(url(sess, f"/journals/2/entries/{number}")).status_code == 404
    assert sess.get(url(sess, "/journals/2/entries")).json()["pagination"]["results"] == 2

    sandbox.control("POST", "book", {"agreement": AGREEMENT, "journal": 2})
    assert sess.get(url(sess, "/journals/2/entries")).json()["pagination"]["results"] == 0
    booked = sess.get(url(sess, f"/journals/2/vouchers/2025-{created[1]['voucherNumber']}"))
    assert booked.status_code == 200
    assert {v["status"] for v in state(sandbox)["vouchers"]} == {"booked", "deleted"}


def test_booking_moves_drafts_to_the_accounting_year_s_booked_entries(sandbox):
    """``GET /accounting-years/{year}/entries`` (shape *assumed*: not in ../shared): paged and filtered like the
    other collections, each booked entry with its own entryNumber, entryType, text, voucherNumber, date."""
    sess = client(sandbox)
    created = sess.post(url(sess, "/journals/2/vouchers"), json=[invoice(), invoice(day="2025-03-09")]).json()
    sess.post(url(sess, "/journals/3/vouchers"), json=[payment()])
    assert sess.get(url(sess, "/accounting-years/2025/entries")).json()["pagination"]["results"] == 0

    sandbox.control("POST", "book", {"agreement": AGREEMENT, "journal": 2})

    booked = sess.get(url(sess, "/accounting-years/2025/entries"), params={"pagesize": 1}).json()
    assert booked["pagination"]["results"] == 2 and "nextPage" in booked["pagination"]
    entry = booked["collection"][0]
    assert entry["entryType"] == "supplierInvoice" and entry["voucherNumber"] == created[0]["voucherNumber"]
    assert entry["text"].endswith("[bill_01J9ZK3X4Q]") and entry["date"] == "2025-03-04"
    assert entry["account"]["accountNumber"] == 2750 and isinstance(entry["entryNumber"], int)
    by_date = sess.get(
        url(sess, "/accounting-years/2025/entries"), params={"filter": "date$gte:2025-03-05$and:date$lte:2025-03-31"}
    ).json()
    assert [e["voucherNumber"] for e in by_date["collection"]] == [created[1]["voucherNumber"]]
    # the payments' journal was not booked: its entry is still a draft, not a booked entry
    assert sess.get(url(sess, "/journals/3/entries")).json()["pagination"]["results"] == 1


# --------------------------------------------------------------------------- attachments


def test_an_attachment_is_posted_once_and_patch_adds_pages(sandbox):
    sess = client(sandbox)
    created = sess.post(url(sess, "/journals/2/vouchers"), json=invoice()).json()
    path = f"/journals/2/vouchers/2025-{created['voucherNumber']}/attachment"
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF"
    first = sess.post(url(sess, f"{path}/file"), files={"file": ("bill.pdf", pdf, "application/pdf")})
    assert first.status_code == 201 and first.json()["pages"] == 1
    second = sess.post(url(sess, f"{path}/file"), files={"file": ("bill.pdf", pdf, "application/pdf")})
    assert second.status_code == 400 and "already has attachment" in second.json()["message"]
    patched = sess.patch(url(sess, f"{path}/file"), files={"file": ("page2.png", b"\x89PNG....", "image/png")})
    assert patched.status_code == 200
    assert sess.get(url(sess, path)).json()["pages"] == 2
    info = state(sandbox)["vouchers"][0]["attachment"]
    assert info["pages"] == 2 and info["bytes"] == len(pdf) + 8
    assert (
        sess.post(
            url(sess, "/journals/2/vouchers/2025-19999/attachment/file"),
            files={"file": ("bill.pdf", pdf, "application/pdf")},
        ).status_code
        == 404
    )
    exe = sess.patch(url(sess, f"{path}/file"), files={"file": ("virus.exe", b"MZ", "application/octet-stream")})
    assert exe.status_code == 400
    huge = sess.patch(
        url(sess, f"{path}/file"), files={"file": ("big.pdf", b"0" * (9 * 1024 * 1024 + 1), "application/pdf")}
    )
    assert huge.status_code in (400, 413)


def test_attachments_need_the_scanning_add_on(sandbox):
    sess = client(sandbox, NO_SCANNING)
    created = sess.post(url(sess, "/journals/2/vouchers"), json=invoice()).json()
    resp = sess.post(
        url(sess, f"/journals/2/vouchers/2025-{created['voucherNumber']}/attachment/file"),
        files={"file": ("bill.pdf", b"%PDF-1.4", "application/pdf")},
    )
    assert resp.status_code == 403
    assert resp.json()["errorCode"] == "E03040" and "Scanning add-on" in resp.json()["message"]


# --------------------------------------------------------------------------- suppliers


def test_a_supplier_is_created_with_the_next_number_and_validated(sandbox):
    sess = client(sandbox)
    existing = sess.get(url(sess, "/suppliers"), params={"pagesize": 1000}).json()["collection"]
    body = {
        "name": "Telenor A/S",
        "corporateIdentificationNumber": "19433692",
        "currency": "DKK",
        "supplierGroup": {"supplierGroupNumber": 1},
        "vatZone": {"vatZoneNumber": 1},
        "paymentTerms": {"paymentTermsNumber": 2},
    }
    resp = sess.post(url(sess, "/suppliers"), json=body)
    assert resp.status_code == 201
    created = resp.json()
    assert created["supplierNumber"] == max(s["supplierNumber"] for s in existing) + 1
    found = sess.get(url(sess, "/suppliers"), params={"filter": "corporateIdentificationNumber$eq:19433692"})
    assert [s["supplierNumber"] for s in found.json()["collection"]] == [created["supplierNumber"]]
    missing_name = copy.deepcopy(body)
    del missing_name["name"]
    bad = sess.post(url(sess, "/suppliers"), json=missing_name)
    assert bad.status_code == 400 and "name" in bad.json()["errors"]
    unknown_group = {**body, "supplierGroup": {"supplierGroupNumber": 42}}
    assert sess.post(url(sess, "/suppliers"), json=unknown_group).status_code == 400
    assert state(sandbox)["counters"]["suppliers"]["POST"] == 3


# --------------------------------------------------------------------------- payment types (README "Payment types")


def with_payment_type(**ptype: Any) -> dict[str, Any]:
    return invoice(paymentDetails={"paymentType": ptype})


def payment_type_errors(resp: requests.Response) -> list[dict[str, Any]]:
    node = entry_errors(resp.json())["paymentDetails"]["paymentType"]
    return [err for child in node.values() if isinstance(child, dict) for err in child.get("errors", [])]


def test_payment_types_listed_are_the_documented_ones(sandbox):
    sess = client(sandbox)
    listed = sess.get(url(sess, "/payment-types")).json()["collection"]
    assert {t["paymentTypeNumber"]: t["name"] for t in listed} == {
        1: "+71",
        2: "+73",
        5: "+04",
        7: "Bank transfer",
        10: "IBAN",
        14: "Entry only",
        17: "+75",
    }
    assert sess.get(url(sess, "/payment-types/17")).json()["name"] == "+75"
    assert sess.get(url(sess, "/payment-types/3")).status_code == 404


@pytest.mark.parametrize(
    "ptype",
    [
        pytest.param({"paymentTypeNumber": 1, "fiSupplierNo": "85123456", "ocrLine": "000000001234567"}, id="+71"),
        pytest.param({"paymentTypeNumber": 2, "fiSupplierNo": "85123456", "message": "2025-0042"}, id="+73"),
        pytest.param({"paymentTypeNumber": 5, "giroAccount": "12345678", "ocrLine": "0000000012345678"}, id="+04"),
        pytest.param({"paymentTypeNumber": 7, "accountNo": "1234 5678901", "message": "2025-0042"}, id="bank"),
        pytest.param({"paymentTypeNumber": 10, "ibanSwift": "DK5000400440116243", "message": "2025-0042"}, id="IBAN"),
        pytest.param(
            {"paymentTypeNumber": 17, "fiSupplierNo": "87654321", "ocrLineMessage": "0000000012345678"}, id="+75"
        ),
    ],
)
def test_each_documented_payment_type_in_its_shape_is_accepted(sandbox, ptype):
    sess = client(sandbox)
    resp = sess.post(url(sess, "/journals/2/vouchers"), json=with_payment_type(**ptype))
    assert resp.status_code == 201, resp.text
    details = resp.json()["entries"]["supplierInvoices"][0]["paymentDetails"]["paymentType"]
    assert details["paymentTypeNumber"] == ptype["paymentTypeNumber"]


@pytest.mark.parametrize(
    ("ptype", "says"),
    [
        pytest.param(
            {"paymentTypeNumber": 3, "fiSupplierNo": "85123456", "ocrLine": "000000001234567"},
            "Payment type 3 not found.",
            id="the old +71 guess 3",
        ),
        pytest.param(
            {"paymentTypeNumber": 6, "fiSupplierNo": "87654321", "ocrLineMessage": "0000000012345678"},
            "Payment type 6 not found.",
            id="the old +75 guess 6",
        ),
        pytest.param(
            {"paymentTypeNumber": 4, "fiSupplierNo": "85123456", "message": "2025-0042"},
            "Payment type 4 not found.",
            id="the old +73 guess 4",
        ),
        pytest.param(
            {"paymentTypeNumber": 17, "fiSupplierNo": "87654321", "ocrLine": "000000001234567"},
            "expects fiSupplierNo and ocrLineMessage",
            id="+75 in the +71 shape",
        ),
        pytest.param(
            {"paymentTypeNumber": 1, "fiSupplierNo": "85123456", "ocrLine": "00000000123456A"},
            "must be digits, 15",
            id="+71 OCR with a letter",
        ),
    ],
)
def test_an_unknown_number_or_a_shape_of_another_type_is_refused_with_E07520(sandbox, ptype, says):
    sess = client(sandbox)
    resp = sess.post(url(sess, "/journals/2/vouchers"), json=with_payment_type(**ptype))
    assert resp.status_code == 400
    errors = payment_type_errors(resp)
    assert [e["errorCode"] for e in errors] == ["E07520"] and says in errors[0]["message"], errors
    assert state(sandbox)["vouchers"] == []


def test_a_payment_type_fitting_no_or_two_schema_alternatives_is_a_schema_error(sandbox):
    sess = client(sandbox)
    none = sess.post(
        url(sess, "/journals/2/vouchers"),
        json=with_payment_type(paymentTypeNumber=1, fiSupplierNo="85123456", ocrLine="1234"),
    )
    two = sess.post(
        url(sess, "/journals/2/vouchers"),
        json=with_payment_type(
            paymentTypeNumber=1, fiSupplierNo="85123456", ocrLine="000000001234567", message="2025-0042"
        ),
    )
    for resp in (none, two):
        assert resp.status_code == 400
        [err] = entry_errors(resp.json())["paymentDetails"]["paymentType"]["errors"]
        assert err["errorCode"] == "E06010"
    assert (
        "none of the allowed"
        in none.json()["errors"]["entries"]["supplierInvoices"][0]["paymentDetails"]["paymentType"]["errors"][0][
            "message"
        ]
    )
    # 14 (entry only) has no details: no alternative fits it, and it is not accepted on draft entries anyway
    entry_only = sess.post(url(sess, "/journals/2/vouchers"), json=with_payment_type(paymentTypeNumber=14))
    assert entry_only.status_code == 400
    assert state(sandbox)["vouchers"] == []


def test_an_agreement_lacking_a_type_does_not_list_it_and_refuses_it(sandbox):
    sandbox.control("POST", "payment-types", {"agreement": AGREEMENT, "drop": [17]})
    sess = client(sandbox)
    numbers = [t["paymentTypeNumber"] for t in sess.get(url(sess, "/payment-types")).json()["collection"]]
    assert numbers == [1, 2, 5, 7, 10, 14]
    resp = sess.post(
        url(sess, "/journals/2/vouchers"),
        json=with_payment_type(paymentTypeNumber=17, fiSupplierNo="87654321", ocrLineMessage="0000000012345678"),
    )
    assert resp.status_code == 400
    assert [e["message"] for e in payment_type_errors(resp)] == ["Payment type 17 not found."]
    other = client(sandbox, 2)  # another agreement still has it
    assert 17 in [t["paymentTypeNumber"] for t in other.get(url(other, "/payment-types")).json()["collection"]]


# --------------------------------------------------------------------------- assumed conventions, switchable


def test_assumed_conventions_can_be_changed_so_the_sandbox_disagrees(sandbox):
    sess = client(sandbox)
    assert sess.post(url(sess, "/journals/1/vouchers"), json=[invoice(), payment()]).status_code == 201
    sides = [e["side"] for v in state(sandbox)["vouchers"] for e in v["entries"]]
    assert sides == ["credit", "debit"]  # default reading: a minus is a credit
    sandbox.control(
        "POST",
        "conventions",
        {
            "credit_sign": "+",
            "scanning_module_name": "Scanning",
            "vat_zones": {"11": "Domestic", "12": "EU", "13": "Abroad"},
        },
    )
    sides = [e["side"] for v in state(sandbox)["vouchers"] for e in v["entries"]]
    assert sides == ["debit", "credit"]
    assert [m["name"] for m in sess.get(url(sess, "/self")).json()["modules"]][-1] == "Scanning"
    zones = [z["vatZoneNumber"] for z in sess.get(url(sess, "/vat-zones")).json()["collection"]]
    assert zones == [11, 12, 13]
    sandbox.control("POST", "conventions", {"gone_entry_status": 410})
    assert sess.delete(url(sess, "/journals/2/entries/999999")).status_code == 410
    sandbox.control("DELETE", "conventions", {})
    assert sandbox.control("GET", "conventions", {})["credit_sign"] == "-"
    assert sess.delete(url(sess, "/journals/2/entries/999999")).status_code == 404


def test_the_sandbox_never_imports_the_client():
    root = Path(__file__).resolve().parents[2] / "sandboxes"
    importing = [
        str(p.relative_to(root)) for p in root.rglob("*.py") if "roger_economic" in p.read_text(encoding="utf-8")
    ]
    assert importing == []
