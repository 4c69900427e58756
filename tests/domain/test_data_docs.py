"""Great Expectations Data Docs of a validation: the page a data team opens from the UI."""

from __future__ import annotations

from pathlib import Path

from roger_economic import validation
from roger_economic.prepare import prepare
from tests import factories as f


def test_each_validation_writes_its_page_naming_the_failing_bill(tmp_path: Path) -> None:
    ctx = f.context()
    bills = [f.bill(id="bill_fine"), f.bill(id="bill_in_yen", currency="JPY")]
    frame = prepare([(ctx.settings.id, b) for b in bills], {ctx.settings.id: ctx})
    pages: list[Path] = []
    # the second page is built from templates compiled by the first; the third is a retried task's
    # validation (same run name): it links its own page, not the first try's
    for run_name in ("night_1", "night_2", "night_2"):
        docs = validation.DataDocs(tmp_path, run_name)
        findings = validation.run(frame, docs)
        assert [(x.bill_id, x.rule) for x in findings] == [("bill_in_yen", "currency_known")]
        assert docs.page is not None and run_name in docs.page.parts and docs.page not in pages
        pages.append(docs.page)
    assert len(list((tmp_path / "validations").rglob("*.html"))) == 3  # earlier pages stay
    for html in (page.read_text(encoding="utf-8") for page in pages):
        assert "currency known to e-conomic" in html  # the rule, in words
        assert "currency 'JPY' unknown to e-conomic" in html  # the offending value, in words
        assert "agr_0001|bill_in_yen|1" in html  # and the row it came from
    assert "validations/booking_rules/night_2/" in (tmp_path / "index.html").read_text(encoding="utf-8")


def test_roger_text_is_written_into_the_page_as_text_never_as_markup(tmp_path: Path) -> None:
    ctx = f.context()
    evil = '<img src=x onerror="alert(1)">'
    bills = [f.bill(id="bill_<b>x</b>", currency=evil), f.bill(id="bill_fine")]
    frame = prepare([(ctx.settings.id, b) for b in bills], {ctx.settings.id: ctx})
    docs = validation.DataDocs(tmp_path, "night_1")
    findings = validation.run(frame, docs)
    # the findings carry Roger's values as they are; only the page escapes them
    assert [(x.bill_id, x.rule, x.value) for x in findings] == [("bill_<b>x</b>", "currency_known", evil)]
    html = docs.page.read_text(encoding="utf-8")
    assert "<img src=x" not in html and "<b>x</b>" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html and "bill_&lt;b&gt;x&lt;/b&gt;" in html
    assert validation.run(frame) == findings  # without Data Docs: the same findings
