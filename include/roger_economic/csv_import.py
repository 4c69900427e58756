"""Many clients at once: agreements from a CSV file, one result per row.

An accountancy firm that moves 300 clients over does not write 300 YAML entries: it exports a sheet of (Roger
company, Roger token reference, e-conomic grant token reference) rows. Each row becomes an agreement checked by
the same strict schema as the agreements file (:class:`roger_economic.config.AgreementSpec`) and the same
double-booking rule (:func:`roger_economic.config.conflicts`), against the database and the rows above it.

A row is refused on its own, with the reason, and never stops the others: a schema error, an agreement id that
exists already, a Roger company or an e-conomic agreement another agreement has (by agreement number, by the
same grant token reference, or by two references that resolve to the same token), a token reference that does
not resolve. The import only ADDS agreements: changing one is the agreements file's ``--replace`` or the UI's
SAVE. A token's value never appears in a result (a reference does; a value given where a reference belongs is
refused without repeating it). The new agreements have no mappings yet: the setup page suggests them.

Columns (the header names them, in any order; ``,``, ``;`` or a tab between fields, as a spreadsheet writes):
``roger_company_id``, ``roger_token_ref``, ``economic_token_ref`` (required), and ``id``, ``name``,
``economic_agreement_number``, ``invoice_journal``, ``payment_journal`` (optional).

``python -m roger_economic.config import-csv FILE [--invoice-journal N --payment-journal N] [--dry-run]``
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from roger_economic import config, credentials
from roger_economic.db import models
from roger_economic.errors import ConfigError
from roger_economic.model import Agreement

REQUIRED = ("roger_company_id", "roger_token_ref", "economic_token_ref")
OPTIONAL = ("id", "name", "economic_agreement_number", "invoice_journal", "payment_journal")
NUMBERS = ("economic_agreement_number", "invoice_journal", "payment_journal")
MAX_ROWS = 5000


@dataclass(frozen=True)
class RowResult:
    line: int  # the row's line in the file (the header is line 1)
    agreement_id: str | None
    roger_company_id: str
    outcome: str  # "created", "refused" or, in a dry run, "would be created"
    reason: str = ""

    def text(self) -> str:
        who = f"{self.agreement_id or '?'} (Roger company {self.roger_company_id or '?'})"
        return f"line {self.line}: {who}: {self.outcome}" + (f": {self.reason}" if self.reason else "")


def read_rows(data: bytes, name: str = "CSV") -> list[tuple[int, dict[str, str]]]:
    """(line, row) for each non-empty row; the header checked (unknown columns named with the closest known)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: not UTF-8 text: byte 0x{data[exc.start]:02x} at position {exc.start}") from None
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise ConfigError(f"{name}: cannot read CSV: {exc}") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise ConfigError(f"{name}: the file is empty: its first line must name the columns")
    header = [cell.strip().lower() for cell in rows[0]]
    known = [*REQUIRED, *OPTIONAL]
    unknown = [h for h in header if h not in known]
    if unknown:
        raise ConfigError(f"{name}: " + "; ".join(config.unknown_key_message(h, known) for h in unknown))
    dupes = sorted({h for h in header if header.count(h) > 1})
    missing = [c for c in REQUIRED if c not in header]
    if dupes or missing:
        raise ConfigError(
            f"{name}: "
            + "; ".join([f"column {c} appears twice" for c in dupes] + [f"column {c} is missing" for c in missing])
        )
    out = []
    for line, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        out.append((line, {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}))
    if len(out) > MAX_ROWS:
        raise ConfigError(f"{name}: {len(out)} rows: at most {MAX_ROWS} per file")
    return out


def default_id(company_id: str) -> str:
    """``agr_`` and the Roger company id, in the characters an id may have."""
    return ("agr_" + re.sub(r"[^A-Za-z0-9_.-]", "_", company_id))[:64]


def _number(value: str) -> Any:
    """A plain decimal as an integer; anything else stays text for the schema to refuse with its reason."""
    return int(value) if re.fullmatch(r"[0-9]{1,12}", value) else value


def to_raw(row: dict[str, str], defaults: dict[str, Any]) -> dict[str, Any]:
    """The row as the agreements file would write it (what :func:`roger_economic.config.parse_agreement` reads)."""
    raw: dict[str, Any] = {
        "id": row.get("id") or default_id(row.get("roger_company_id", "")),
        "roger": {"company_id": row.get("roger_company_id", ""), "token": row.get("roger_token_ref", "")},
        "economic": {"grant_token": row.get("economic_token_ref", "")},
    }
    if row.get("name"):
        raw["name"] = row["name"]
    if row.get("economic_agreement_number"):
        raw["economic"]["agreement_number"] = _number(row["economic_agreement_number"])
    journals = dict(defaults.get("journals") or {})
    for column, key in (("invoice_journal", "supplier_invoices"), ("payment_journal", "supplier_payments")):
        if row.get(column):
            journals[key] = _number(row[column])
    if journals:
        raw["journals"] = journals
    return raw


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()  # compared, never shown


def _token_problem(cfg: Agreement, conn_lookup: credentials.ConnLookup | None) -> tuple[str | None, str]:
    """(why the row is refused, a note); the grant token's fingerprint is remembered by the caller."""
    for label, ref in (("roger_token_ref", cfg.roger_token_ref), ("economic_token_ref", cfg.economic_token_ref)):
        if ref.startswith("conn:") and conn_lookup is None:
            continue  # this package never imports Airflow: named in the note below
        try:
            credentials.resolve(ref, conn_lookup)
        except ConfigError as exc:
            return f"{label}: {exc}", ""
    unchecked = [r for r in (cfg.roger_token_ref, cfg.economic_token_ref) if r.startswith("conn:")]
    if unchecked and conn_lookup is None:
        return None, f"{', '.join(unchecked)}: an Airflow connection, not checked here"
    return None, ""


def _stored_grants(stored: dict[str, Any], conn_lookup: credentials.ConnLookup | None) -> dict[str, str]:
    """The database's agreements by the fingerprint of their grant token, where it resolves here."""
    out: dict[str, str] = {}
    for aid, row in sorted(stored.items()):
        ref = row.economic_token_ref
        if ref.startswith("conn:") and conn_lookup is None:
            continue
        try:
            out.setdefault(_fingerprint(credentials.resolve(ref, conn_lookup)), aid)
        except ConfigError:
            continue  # not resolvable here: compared by its reference only
    return out


def import_rows(
    sess: Session,
    rows: list[tuple[int, dict[str, str]]],
    defaults: dict[str, Any] | None = None,
    conn_lookup: credentials.ConnLookup | None = None,
    dry_run: bool = False,
) -> list[RowResult]:
    """Create an agreement per acceptable row (in ``sess``'s unit of work); a result for every row, in order."""
    defaults = defaults or {}
    stored: dict[str, Any] = {a.id: a for a in sess.scalars(select(models.Agreement))}
    accepted: dict[str, Agreement] = {}
    grant_refs = {a.economic_token_ref: aid for aid, a in stored.items()}
    grants = _stored_grants(stored, conn_lookup)  # fingerprint of a resolved grant token → its agreement
    results: list[RowResult] = []
    for line, row in rows:
        company = row.get("roger_company_id", "")
        raw = to_raw(row, defaults)

        def refused(reason: str, aid: str | None = raw["id"], line: int = line, company: str = company) -> None:
            results.append(RowResult(line, aid, company, "refused", reason))

        try:
            cfg = config.parse_agreement(raw, {k: v for k, v in defaults.items() if k != "journals"})
        except ConfigError as exc:
            refused(str(exc).removeprefix(f"agreement {raw['id']}: "))
            continue
        if cfg.id in stored or cfg.id in accepted:
            where = "in the database" if cfg.id in stored else "on an earlier line"
            refused(f"agreement id {cfg.id} exists already ({where}): the import only adds agreements")
            continue
        problems = config.conflicts({**accepted, cfg.id: cfg}, stored)  # the rows above are clean: only this one
        if problems:
            refused("; ".join(p.removeprefix(f"agreement {cfg.id}: ") for p in problems))
            continue
        if cfg.economic_token_ref in grant_refs:
            refused(
                f"e-conomic agreement: grant token {cfg.economic_token_ref} is already agreement "
                f"{grant_refs[cfg.economic_token_ref]}'s: both would book every bill"
            )
            continue
        problem, note = _token_problem(cfg, conn_lookup)
        if problem:
            refused(problem)
            continue
        grant = None
        if not cfg.economic_token_ref.startswith("conn:") or conn_lookup is not None:
            grant = _fingerprint(credentials.resolve(cfg.economic_token_ref, conn_lookup))
            if grant in grants:
                refused(
                    f"e-conomic agreement: its grant token is the same as agreement {grants[grant]}'s (another "
                    f"reference to one token): both would book every bill"
                )
                continue
        accepted[cfg.id] = cfg
        grant_refs[cfg.economic_token_ref] = cfg.id
        if grant is not None:
            grants[grant] = cfg.id
        results.append(RowResult(line, cfg.id, company, "would be created" if dry_run else "created", note))
    if not dry_run:
        config.store(sess, list(accepted.values()))
    return results


def import_file(
    path: str,
    url: str | None = None,
    defaults: dict[str, Any] | None = None,
    conn_lookup: credentials.ConnLookup | None = None,
    dry_run: bool = False,
) -> list[RowResult]:
    """Read and import a CSV file (see :func:`import_rows`)."""
    from pathlib import Path

    from roger_economic.db import session

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    rows = read_rows(data, str(path))
    with session(url) as sess:
        return import_rows(sess, rows, defaults, conn_lookup, dry_run)
