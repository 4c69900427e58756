"""The Roger sandbox keeps the openapi contract and plays out the data and faults the pipeline must meet."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import yaml
from jsonschema import Draft202012Validator

from sandboxes import world
from sandboxes.httpbase import SandboxProcess
from sandboxes.roger import data

ROOT = Path(__file__).resolve().parents[2]
# the shared contract beside the project; else the package's copy (a test keeps the two equal)
OPENAPI = next(
    (
        p / "shared" / "roger-api" / "openapi.yaml"
        for p in ROOT.parents
        if (p / "shared" / "roger-api" / "openapi.yaml").is_file()
    ),
    ROOT / "include" / "roger_economic" / "roger" / "openapi.yaml",
)
END = "2026-11-26T00:00:00Z"
DAYS = 7
BILLS = 60
PROBLEM_RATE = 0.12  # 7 problem bills per company: every kind once
ARGS = [
    "--companies",
    "3",
    "--bills",
    str(BILLS),
    "--seed",
    "7",
    "--token-prefix",
    "sbx-",
    "--end",
    END,
    "--days",
    str(DAYS),
    "--problem-rate",
    str(PROBLEM_RATE),
    "--paid-rate",
    "0.4",
]
C1, C2, C3 = world.company_id(1), world.company_id(2), world.company_id(3)


@pytest.fixture(scope="module")
def roger():
    with SandboxProcess("sandboxes.roger", ARGS) as proc:
        yield proc


@pytest.fixture(autouse=True)
def _no_faults(roger):
    yield
    roger.control("DELETE", "faults")


def get(roger, path, i=1, token=None, **params):
    token = world.roger_token(i) if token is None else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{roger.base_url}/v1{path}", headers=headers, params=params, timeout=10)


def walk(roger, i, **params):
    """Every page of /bills; returns the bills and the number of pages."""
    bills, pages, cursor = [], 0, None
    while True:
        query = dict(params)
        if cursor:
            query["cursor"] = cursor
        resp = get(roger, f"/companies/{world.company_id(i)}/bills", i, **query)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        bills += body["data"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return bills, pages


def key(bill):
    return (data.parse_time(bill["updated_at"]), bill["id"])


def bill_validator() -> Draft202012Validator:
    spec = yaml.safe_load(OPENAPI.read_text())
    schema = {"$ref": "#/components/schemas/Bill", "components": spec["components"]}
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


# --------------------------------------------------------------------------- the data


def test_generation_is_deterministic_and_seeded():
    args = (BILLS, 7, END, DAYS, PROBLEM_RATE, 0.4)
    first = json.dumps(data.generate_company(1, *args), sort_keys=True)
    assert first == json.dumps(data.generate_company(1, *args), sort_keys=True)
    assert first != json.dumps(data.generate_company(1, BILLS, 8, END, DAYS, PROBLEM_RATE, 0.4), sort_keys=True)
    assert data.document_pdf(json.loads(first)[0]) == data.document_pdf(json.loads(first)[0])


def test_generated_bills_have_the_promised_spread():
    end = data.parse_time(END)
    all_ids = []
    for i in (1, 2, 3):
        bills = data.generate_company(i, BILLS, 7, END, DAYS, PROBLEM_RATE, 0.4)
        all_ids += [b["id"] for b in bills]
        for b in bills:
            assert end - timedelta(days=DAYS) <= data.parse_time(b["updated_at"]) < end
            assert b["created_at"] <= b["updated_at"]
            assert b["id"].startswith("bill_") and len(b["id"]) == 15
        times = Counter(b["updated_at"] for b in bills)
        assert max(times.values()) >= 2, "some bills share an updated_at (tie-break on id)"
        assert {b["status"] for b in bills} == set(data.STATUSES)
        assert {b["document_type"] for b in bills} == {"bill", "receipt", "credit_note"}
        assert sorted(b["_problem"] for b in bills if "_problem" in b) == sorted(data.PROBLEM_KINDS)
        assert any(b["deleted"] for b in bills)
        assert sum(b["version"] > 1 for b in bills) >= 2
        assert {b["currency"] for b in bills} >= {"DKK", "EUR"}
        for b in bills:
            if b["status"] == "PAID":
                assert b["payment"]["paid_date"] >= b["issue_date"]
            if b["document_type"] == "receipt":
                assert b["status"] == "PAID" and b["payment"]["paid_date"] == b["issue_date"]
    assert len(set(all_ids)) == len(all_ids), "ids are unique across companies"


def test_payment_codes_cover_every_fi_kind():
    codes = [
        b["payment_code"]
        for i in range(1, 6)
        for b in data.generate_company(i, 200, 7, END, DAYS, 0.05, 0.4)
        if b["payment_code"]
    ]
    starts = Counter(c[:4] for c in codes)
    assert starts["+71<"] > starts["+73<"] > 0 and starts["+75<"] > 0 and starts["+04<"] > 0
    assert any(not c.startswith(("+71<", "+73<", "+75<", "+04<")) or "X" in c for c in codes)


# --------------------------------------------------------------------------- the contract


def test_served_bills_validate_against_the_openapi_bill_schema(roger):
    validator = bill_validator()
    problems = roger.control("GET", f"problems?company_id={C1}")
    bills = roger.control("GET", f"bills?company_id={C1}")["data"]
    assert len(bills) == BILLS and all("_problem" not in b for b in bills)
    for bill in bills:
        errors = [list(e.absolute_path) for e in validator.iter_errors(bill)]
        if problems.get(bill["id"]) == "amount_3_decimals":
            assert errors == [["amount"]]
        else:
            assert errors == [], (bill["id"], errors)


def test_problems_are_exposed_and_unmapped_categories_are_served(roger):
    problems = roger.control("GET", f"problems?company_id={C2}")
    assert sorted(problems.values()) == sorted(data.PROBLEM_KINDS)
    by_id = {b["id"]: b for b in roger.control("GET", f"bills?company_id={C2}")["data"]}
    unmapped = next(bid for bid, kind in problems.items() if kind == "category_unmapped")
    categories = get(roger, f"/companies/{C2}/categories", 2).json()["data"]
    served = {c["id"]: c for c in categories}
    assert served[by_id[unmapped]["category_id"]]["archived"] is False
    assert served["cat_old"]["archived"] is True
    mobilepay = next(bid for bid, kind in problems.items() if kind == "payment_method_unmapped")
    assert by_id[mobilepay]["payment"]["method_id"] == "pm_mobilepay"
    closed = next(bid for bid, kind in problems.items() if kind == "closed_year")
    assert by_id[closed]["issue_date"].startswith("2024-")
    methods = get(roger, f"/companies/{C2}/payment-methods", 2).json()["data"]
    assert {m["id"] for m in methods} == {pm[0] for pm in world.PAYMENT_METHODS}


def test_company_endpoint(roger):
    body = get(roger, f"/companies/{C1}").json()
    assert body["id"] == C1 and body["base_currency"] == "DKK" and len(body["cvr"]) == 8


def test_walk_with_small_pages_returns_every_bill_once_in_order(roger):
    bills, pages = walk(roger, 1, limit=7)
    expected = roger.control("GET", f"bills?company_id={C1}")["data"]
    assert [b["id"] for b in bills] == [b["id"] for b in expected]
    assert len({b["id"] for b in bills}) == BILLS and pages == -(-BILLS // 7)
    assert [key(b) for b in bills] == sorted(key(b) for b in bills)


def test_walk_respects_the_window(roger):
    everything = roger.control("GET", f"bills?company_id={C1}")["data"]
    since, before = everything[10]["updated_at"], everything[40]["updated_at"]
    bills, _ = walk(roger, 1, limit=7, updated_since=since, updated_before=before)
    expected = [b["id"] for b in everything if since <= b["updated_at"] < before]
    assert [b["id"] for b in bills] == expected and everything[10]["id"] in expected
    assert all(b["updated_at"] != before for b in bills)


def test_status_filter_is_repeatable(roger):
    bills, _ = walk(roger, 1, limit=5, status=["PAID", "UPCOMING"])
    everything = roger.control("GET", f"bills?company_id={C1}")["data"]
    assert [b["id"] for b in bills] == [b["id"] for b in everything if b["status"] in ("PAID", "UPCOMING")]
    assert {b["status"] for b in bills} == {"PAID", "UPCOMING"}


def test_one_bill_and_its_document(roger):
    bills = roger.control("GET", f"bills?company_id={C1}")["data"]
    with_doc = next(b for b in bills if b["has_document"])
    assert get(roger, f"/companies/{C1}/bills/{with_doc['id']}").json() == with_doc
    pdf = get(roger, f"/companies/{C1}/bills/{with_doc['id']}/document")
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and pdf.content.rstrip().endswith(b"%%EOF")
    assert with_doc["id"].encode() in pdf.content
    without = next(b for b in bills if not b["has_document"])
    assert get(roger, f"/companies/{C1}/bills/{without['id']}/document").status_code == 404
    missing = get(roger, f"/companies/{C1}/bills/bill_NOPE000000")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


# --------------------------------------------------------------------------- auth and errors


def test_missing_or_wrong_token_is_401_and_another_companys_token_is_403(roger):
    for token in ("", "sbx-roger-9999", "nonsense"):
        resp = get(roger, f"/companies/{C1}/bills", token=token)
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"
        assert resp.json()["error"]["request_id"]
    resp = get(roger, f"/companies/{C1}/bills", token=world.roger_token(2))
    assert resp.status_code == 403 and set(resp.json()["error"]) == {"code", "message", "request_id"}


def test_revoked_token_is_401_until_unrevoked(roger):
    roger.control("POST", "revoke", {"company_id": C2})
    try:
        assert get(roger, f"/companies/{C2}", 2).status_code == 401
        assert get(roger, f"/companies/{C1}", 1).status_code == 200
    finally:
        roger.control("POST", "unrevoke", {"company_id": C2})
    assert get(roger, f"/companies/{C2}", 2).status_code == 200


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 501},
        {"limit": "ten"},
        {"cursor": "not-a-cursor"},
        {"cursor": "W10"},
        {"status": "LOST"},
        {"updated_since": "yesterday"},
    ],
)
def test_bad_parameters_are_400(roger, params):
    resp = get(roger, f"/companies/{C1}/bills", **params)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_parameter"


def test_limit_bounds_are_accepted(roger):
    assert len(get(roger, f"/companies/{C1}/bills", limit=1).json()["data"]) == 1
    body = get(roger, f"/companies/{C1}/bills", limit=500).json()
    assert len(body["data"]) == BILLS and body["next_cursor"] is None


# --------------------------------------------------------------------------- changes through control


def test_update_bumps_version_and_lands_after_the_old_window(roger):
    before = roger.control("GET", f"bills?company_id={C3}")["data"]
    latest = before[-1]["updated_at"]
    target = next(b for b in before if not b["deleted"] and b["status"] == "UPCOMING")
    new = roger.control(
        "POST", "bills/update", {"company_id": C3, "bill_id": target["id"], "changes": {"amount": "999.50"}}
    )
    assert new["version"] == target["version"] + 1 and new["amount"] == "999.50"
    assert new["updated_at"] == data.format_time(data.parse_time(latest) + timedelta(seconds=1))
    old_window, _ = walk(roger, 3, limit=7, updated_before=new["updated_at"])
    assert target["id"] not in {b["id"] for b in old_window}
    later, _ = walk(roger, 3, updated_since=new["updated_at"])
    assert [b["id"] for b in later] == [target["id"]]
    everything, _ = walk(roger, 3, limit=7)
    assert [b["id"] for b in everything].count(target["id"]) == 1 and everything[-1] == new

    gone = roger.control(
        "POST", "bills/update", {"company_id": C3, "bill_id": target["id"], "changes": {"deleted": True}}
    )
    assert gone["deleted"] is True and gone["version"] == new["version"] + 1
    assert get(roger, f"/companies/{C3}/bills/{target['id']}", 3).json()["deleted"] is True


def test_add_through_control(roger):
    added = roger.control(
        "POST", "bills/add", {"company_id": C3, "bill": {"category_id": None}, "problem": "category_null"}
    )
    assert added["version"] == 1 and added["category_id"] is None
    assert bill_validator().is_valid(added)
    assert roger.control("GET", f"problems?company_id={C3}")[added["id"]] == "category_null"
    assert get(roger, f"/companies/{C3}/bills/{added['id']}", 3).json() == added


# --------------------------------------------------------------------------- faults


def test_malformed_breaks_one_record_of_the_next_bills_page(roger):
    roger.control("POST", "faults", {"kind": "malformed", "scope": C1})
    assert get(roger, f"/companies/{C1}/categories").status_code == 200  # not a bills page: untouched
    page = get(roger, f"/companies/{C1}/bills", limit=10).json()["data"]
    broken = [b for b in page if "amount" not in b]
    assert len(broken) == 1 and len(page) == 10
    assert all("amount" in b for b in get(roger, f"/companies/{C1}/bills", limit=10).json()["data"])


def test_page_fail_fails_a_page_after_the_first(roger):
    roger.control("POST", "faults", {"kind": "page_fail", "scope": C1})
    first = get(roger, f"/companies/{C1}/bills", limit=7)
    assert first.status_code == 200
    cursor = first.json()["next_cursor"]
    failed = get(roger, f"/companies/{C1}/bills", limit=7, cursor=cursor)
    assert failed.status_code == 500 and failed.json()["error"]["code"] == "internal_error"
    retried = get(roger, f"/companies/{C1}/bills", limit=7, cursor=cursor)
    assert retried.status_code == 200 and retried.json()["data"]


def test_rate_limit_carries_retry_after(roger):
    roger.control("POST", "faults", {"kind": "status", "status": 429, "retry_after": 3, "scope": C1})
    resp = get(roger, f"/companies/{C1}/bills")
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "3"
    assert resp.json()["error"]["code"] == "rate_limited"
    assert get(roger, f"/companies/{C1}/bills").status_code == 200


def test_stats_count_requests_per_company_and_kind(roger):
    roger.control("DELETE", "stats")
    walk(roger, 2, limit=25)
    get(roger, f"/companies/{C2}/categories", 2)
    get(roger, f"/companies/{C2}/bills", token="")
    stats = roger.control("GET", "stats")["companies"][C2]
    assert stats == {"bills_pages": 3, "master_data": 1, "rejected": 1}


def test_history_bills_fill_the_week_before_the_window_and_leave_the_window_alone(roger):
    """The benchmark's onboarding night books the history; the night after sees only the window's bills."""
    with SandboxProcess("sandboxes.roger", [*ARGS, "--history-bills", "20", "--history-days", "7"]) as with_history:
        night = data.parse_time(END) - timedelta(days=DAYS)
        history, _ = walk(with_history, 1, limit=50, updated_before=data.format_time(night))
        window, _ = walk(with_history, 1, limit=50, updated_since=data.format_time(night))
        plain, _ = walk(roger, 1, limit=50)
    assert len(history) == 20
    assert all(night - timedelta(days=7) <= data.parse_time(b["updated_at"]) < night for b in history)
    assert window == plain  # the night's bills are the same with or without a history
    assert not {b["id"] for b in history} & {b["id"] for b in window}


def test_malformed_can_set_a_field_to_any_json_or_to_raw_json_text(roger):
    roger.control(
        "POST", "faults", {"kind": "malformed", "scope": C1, "bill_field": "payment.method_id", "value": ["pm_bank"]}
    )
    page = get(roger, f"/companies/{C1}/bills", limit=10).json()["data"]
    assert [b["payment"]["method_id"] for b in page if isinstance((b["payment"] or {}).get("method_id"), list)] == [
        ["pm_bank"]
    ]
    roger.control("POST", "faults", {"kind": "malformed", "scope": C1, "bill_field": "amount", "raw": "1e9"})
    resp = get(roger, f"/companies/{C1}/bills", limit=10)
    assert resp.status_code == 200 and b'"amount": 1e9' in resp.content
    assert sum(b["amount"] == 1e9 for b in resp.json()["data"]) == 1


def test_repeat_cursor_answers_the_cursor_asked_for(roger):
    roger.control("POST", "faults", {"kind": "repeat_cursor", "scope": C1, "times": 2})
    first = get(roger, f"/companies/{C1}/bills", limit=7).json()
    cursor = first["next_cursor"]
    assert (
        first["next_cursor"]
        and get(roger, f"/companies/{C1}/bills", limit=7, cursor=cursor).json()["next_cursor"] == cursor
    )
    assert get(roger, f"/companies/{C1}/bills", limit=7, cursor=cursor).json()["next_cursor"] == cursor
    assert get(roger, f"/companies/{C1}/bills", limit=7, cursor=cursor).json()["next_cursor"] != cursor


def test_endless_never_answers_a_last_page_while_armed(roger):
    roger.control("POST", "faults", {"kind": "endless", "scope": C1, "times": -1})
    cursors, seen, cursor = set(), [], None
    for _ in range(BILLS // 20 + 5):  # past the last bill
        body = get(roger, f"/companies/{C1}/bills", limit=20, **({"cursor": cursor} if cursor else {})).json()
        seen += [b["id"] for b in body["data"]]
        cursor = body["next_cursor"]
        assert cursor and cursor not in cursors
        cursors.add(cursor)
    assert len(seen) == BILLS == len(set(seen))
    roger.control("DELETE", "faults")
    assert get(roger, f"/companies/{C1}/bills", limit=20, cursor=cursor).json()["next_cursor"] is None


def test_names_control_renames_categories_and_payment_methods(roger):
    renamed = roger.control(
        "POST",
        "names",
        {
            "company_id": C3,
            "categories": {"cat_office": "<b>Kontor</b>", "cat_brand_new": "Ny"},
            "payment_methods": {"pm_bank": 'Bank "&" co'},
        },
    )
    categories = {c["id"]: c["name"] for c in get(roger, f"/companies/{C3}/categories", 3).json()["data"]}
    methods = {m["id"]: m["name"] for m in get(roger, f"/companies/{C3}/payment-methods", 3).json()["data"]}
    assert categories["cat_office"] == "<b>Kontor</b>" and categories["cat_brand_new"] == "Ny"
    assert methods["pm_bank"] == 'Bank "&" co' and methods["pm_debit"] == "Visa/Dankort"
    assert {c["id"]: c["name"] for c in renamed["categories"]} == categories
    other = {c["id"]: c["name"] for c in get(roger, f"/companies/{C1}/categories", 1).json()["data"]}
    assert other["cat_office"] == "Kontorartikler"  # one company's names only
    with pytest.raises(Exception, match="404"):
        roger.control("POST", "names", {"company_id": C3, "payment_methods": {"pm_nope": "x"}})
