"""Suggested mappings: an e-conomic account for each Roger category and payment method of one agreement.

A firm adding its 300th client has mapped "Kontorartikler" 299 times already; the setup page proposes what it
would most likely choose, and the accountant confirms it with SAVE. A suggestion is only ever shown: it is
never written to the mapping tables (only an explicit SAVE of the setup form writes them) and the pipeline
never reads it, so nothing is booked on a suggestion alone.

Where a suggestion comes from, in this order (each item gets a ranked list; the first is THE suggestion):

(a) the firm's other agreements that map a category (or payment method) of the same name: the account most of
    them chose, one vote per agreement (ties: the lower account number, so the answer is deterministic);
(b) for a category: name similarity to this agreement's chart of accounts (case-, accent- and Æ/Ø/Å-aware);
(c) for a payment method: its kind, as Roger's guide advises: a bank account or debit card books to the bank
    accounts (58xx), a credit card or an overdraft to short-term debt (66xx/67xx); within the group the account
    whose name fits the method best.

Only accounts that exist and take a direct entry in THIS agreement's chart of accounts are ever suggested
(:func:`roger_economic.masterdata.account_problem`): another agreement's choice that is barred here, or a
heading, is dropped. This module reads no Airflow and no pandas; :func:`for_agreement` reads the database.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from roger_economic import masterdata
from roger_economic.db import models

# A name match needs this similarity (0..1, see :func:`similarity`). Chosen on the sandbox's Danish chart: true
# pairs score 0.8 or more ("Rejser" ~ "Rejseudgifter" by their common stem, "Rådgivning og service" ~
# "Rådgivning og revision"), while words that share only Danish morphology (for-, -ing, -er: "Forplejning" ~
# "Forsikringer" 0.52, "Markedsføring" ~ "Forsikringer" 0.48) stay below 0.6. Below it no name suggestion is
# better than a wrong one that an accountant might save without looking.
NAME_THRESHOLD = 0.6
# Words that carry no meaning in an account's name ("Salg af ydelser m/moms", "Kørsel og transport").
STOPWORDS = frozenset(("og", "af", "til", "i", "for", "med", "m", "moms", "and", "of", "the", "a", "paa", "pa", "e"))
STEM = 5  # a common prefix this long (and most of the shorter word) matches a Danish compound: rejser ~ rejseudgifter

# Roger's guide: bank account and debit card → bank accounts (58xx); credit card and overdraft → short-term debt
# (66xx/67xx). Cash (MobilePay and the like) is not in the guide: liquid funds (58xx), with less confidence.
KIND_GROUPS: dict[str, tuple[range, str]] = {
    "bank_account": (range(5800, 5900), "bank → 58xx (bank accounts)"),
    "debit_card": (range(5800, 5900), "debit card → 58xx (bank accounts)"),
    "credit_card": (range(6600, 6800), "credit card → 66xx/67xx (short-term debt)"),
    "overdraft": (range(6600, 6800), "overdraft → 66xx/67xx (short-term debt)"),
    "cash": (range(5800, 5900), "cash → 58xx (liquid funds; not in Roger's guide)"),
}
KIND_WORDS: dict[str, tuple[str, ...]] = {  # what an account for this kind is usually called
    "bank_account": ("bank", "erhvervskonto", "driftskonto"),
    "debit_card": ("betalingskort", "dankort", "debitkort", "kort"),
    "credit_card": ("kreditkort", "creditcard", "mastercard", "visa"),
    "overdraft": ("kassekredit", "overtraek", "driftskredit"),
    "cash": ("kasse", "kontant", "mobilepay"),
}


@dataclass(frozen=True)
class Suggestion:
    """One proposed account for one item, with where it comes from (shown on the page) and how sure it is."""

    account: int
    account_name: str
    source: str  # "agreements" | "name" | "kind"
    reason: str  # "used by 3 other agreements", "name like 'Kontorartikler'", "bank → 58xx (bank accounts)"
    confidence: float  # 0..1


@dataclass
class Suggestions:
    """Ranked suggestions per Roger category id and per payment method id (best first; absent: none)."""

    categories: dict[str, list[Suggestion]] = field(default_factory=dict)
    methods: dict[str, list[Suggestion]] = field(default_factory=dict)

    def first(self) -> dict[str, Suggestion]:
        """The suggestion per setup-form field (``cat_account__<id>``, ``pm_account__<id>``)."""
        out = {f"cat_account__{cid}": found[0] for cid, found in self.categories.items() if found}
        out |= {f"pm_account__{mid}": found[0] for mid, found in self.methods.items() if found}
        return out


@dataclass
class Peer:
    """Another agreement of the firm: its Roger master data (for the names) and its saved mappings."""

    categories: Mapping[str, Any]  # category id → account (or (account, vat code))
    methods: Mapping[str, int]
    roger_categories: list[dict[str, Any]] = field(default_factory=list)
    roger_methods: list[dict[str, Any]] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ names

_DANISH = str.maketrans({"æ": "ae", "ø": "oe", "å": "aa", "ß": "ss"})
_PLAIN = str.maketrans({"æ": "a", "ø": "o", "å": "a", "ß": "s"})


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def forms(name: Any) -> tuple[str, ...]:
    """The name folded two ways: Æ/Ø/Å as ae/oe/aa (Danish transliteration, "Aarhus") and as a/o/a ("Arhus");
    casefolded, other accents stripped ("Café" = "cafe"), punctuation as spaces."""
    text = unicodedata.normalize("NFC", str(name or "")).casefold()
    out = []
    for table in (_DANISH, _PLAIN):
        folded = _strip_accents(text.translate(table))
        out.append(" ".join(re.findall(r"[a-z0-9]+", folded)))
    return tuple(dict.fromkeys(out))


def name_key(name: Any) -> str:
    """The key under which two items "have the same name": case, accents, Æ/Ø/Å spelt out or not, spacing and
    punctuation do not count (``Rådgivning & service`` = ``RAADGIVNING  og service``? no: ``og`` is a word)."""
    return forms(name)[0]


def tokens(text: str) -> list[str]:
    return [t for t in text.split() if t not in STOPWORDS] or text.split()


def _word_match(a: str, b: str) -> float:
    if a == b:
        return 1.0
    common = len(_common_prefix(a, b))
    if common >= STEM and common >= 0.8 * min(len(a), len(b)):
        return 0.9
    ratio = difflib.SequenceMatcher(None, a, b).ratio()
    return ratio if ratio >= 0.8 else 0.0


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _similarity_of_forms(a: str, b: str) -> float:
    ta, tb = tokens(a), tokens(b)
    if not ta or not tb:
        return 0.0
    matched = sum(max(_word_match(x, y) for y in tb) for x in ta) + sum(max(_word_match(y, x) for x in ta) for y in tb)
    overlap = matched / (len(ta) + len(tb))
    whole = difflib.SequenceMatcher(None, a, b).ratio()
    return max(overlap, whole)


def similarity(a: Any, b: Any) -> float:
    """0..1: how alike two names are, the best of both folds (:func:`forms`): word overlap, where a word also
    matches its compound (``rejser`` ~ ``rejseudgifter``) or a near spelling, or the whole names' likeness."""
    return max((_similarity_of_forms(x, y) for x in forms(a) for y in forms(b)), default=0.0)


# ------------------------------------------------------------------------------------------------ suggesting


def bookable(snapshots: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """This agreement's accounts that take a direct entry, by number."""
    accounts = {a["accountNumber"]: a for a in snapshots.get("accounts") or [] if "accountNumber" in a}
    return {n: a for n, a in accounts.items() if masterdata.account_problem(accounts, n) is None}


@dataclass
class Votes:
    """What the firm's other agreements chose, per item name (and per item id, for agreements without names)."""

    categories: dict[str, Counter[int]] = field(default_factory=dict)
    methods: dict[str, Counter[int]] = field(default_factory=dict)


def votes(peers: Iterable[Peer]) -> Votes:
    """One vote per agreement and item: ``name:<key>`` when its Roger master data names it, ``id:<id>`` always."""
    out = Votes()
    for peer in peers:
        for target, mapping, listed in (
            (out.categories, peer.categories, peer.roger_categories),
            (out.methods, peer.methods, peer.roger_methods),
        ):
            names = {item.get("id"): item.get("name") for item in listed}
            for item_id, value in mapping.items():
                account = int(value[0] if isinstance(value, (tuple, list)) else value)
                keys = {f"id:{item_id}"}
                if names.get(item_id):
                    keys.add(f"name:{name_key(names[item_id])}")
                for key in keys:
                    target.setdefault(key, Counter())[account] += 1
    return out


def _from_votes(
    item: Mapping[str, Any], counts: Mapping[str, Counter[int]], accounts: Mapping[int, dict[str, Any]]
) -> list[Suggestion]:
    found = counts.get(f"name:{name_key(item.get('name'))}") if item.get("name") else None
    if not found:
        found = counts.get(f"id:{item.get('id')}")
    if not found:
        return []
    usable = {a: n for a, n in found.items() if a in accounts}  # another agreement's choice must be bookable here
    total = sum(found.values())
    ranked = sorted(usable.items(), key=lambda an: (-an[1], an[0]))
    return [
        Suggestion(
            account,
            str(accounts[account].get("name") or ""),
            "agreements",
            f"used by {n} other agreement{'s' if n != 1 else ''}" + (f" (of {total})" if total != n else ""),
            round(min(0.99, 0.6 + 0.4 * n / total), 2),
        )
        for account, n in ranked
    ]


def _by_name(
    name: Any, accounts: Mapping[int, dict[str, Any]], numbers: Iterable[int] | None = None
) -> list[Suggestion]:
    scored = []
    for number in accounts if numbers is None else numbers:
        score = similarity(name, accounts[number].get("name"))
        if score >= NAME_THRESHOLD:
            scored.append((score, number))
    scored.sort(key=lambda sn: (-sn[0], sn[1]))
    return [
        Suggestion(n, str(accounts[n].get("name") or ""), "name", f"name like '{accounts[n].get('name')}'",
                   round(0.9 * s, 2))
        for s, n in scored
    ]  # fmt: skip


def _by_kind(method: Mapping[str, Any], accounts: Mapping[int, dict[str, Any]]) -> list[Suggestion]:
    kind = str(method.get("kind") or "")
    if kind not in KIND_GROUPS:
        return []
    group, reason = KIND_GROUPS[kind]
    numbers = [n for n in sorted(accounts) if n in group and accounts[n].get("accountType") == "status"]
    if not numbers:
        return []
    hints = [method.get("name"), *KIND_WORDS.get(kind, ())]

    def fit(number: int) -> float:
        return max(similarity(hint, accounts[number].get("name")) for hint in hints)

    ranked = sorted(numbers, key=lambda n: (-round(fit(n), 3), n))
    base = 0.5 if kind == "cash" else 0.7
    out = []
    for n in ranked:
        score = fit(n)
        why = f"{reason}, name like '{accounts[n].get('name')}'" if score >= NAME_THRESHOLD else reason
        out.append(Suggestion(n, str(accounts[n].get("name") or ""), "kind", why, round(base + 0.25 * score, 2)))
    return out


def _merge(*lists: list[Suggestion]) -> list[Suggestion]:
    """The lists in order, each account once (its first, strongest, source)."""
    seen: set[int] = set()
    out = []
    for found in lists:
        for s in found:
            if s.account not in seen:
                seen.add(s.account)
                out.append(s)
    return out


def suggest(snapshots: Mapping[str, Any], peers: Iterable[Peer] | Votes = ()) -> Suggestions:
    """Ranked suggestions for every non-archived Roger category and payment method of one agreement.

    Every item is answered, mapped or not (the caller shows them for unmapped items only; the measurement hides a
    mapped one and asks). ``peers`` are the firm's OTHER agreements (or their :func:`votes`, computed once)."""
    counts = peers if isinstance(peers, Votes) else votes(peers)
    accounts = bookable(snapshots)
    out = Suggestions()
    for cat in snapshots.get("roger_categories") or []:
        if cat.get("archived") or "id" not in cat:
            continue
        found = _merge(_from_votes(cat, counts.categories, accounts), _by_name(cat.get("name"), accounts))
        if found:
            out.categories[cat["id"]] = found
    for method in snapshots.get("roger_payment_methods") or []:
        if method.get("archived") or "id" not in method:
            continue
        found = _merge(_from_votes(method, counts.methods, accounts), _by_kind(method, accounts))
        if found:
            out.methods[method["id"]] = found
    return out


# ------------------------------------------------------------------------------------------------ the database


def peers(sess: Session, agreement_id: str) -> list[Peer]:
    """The firm's other agreements (every agreement in this database but this one), with their saved mappings and
    the names from their Roger master data. Four queries, whatever the number of agreements."""
    cats: dict[str, dict[str, int]] = {}
    for m in sess.scalars(select(models.CategoryMapping).where(models.CategoryMapping.agreement_id != agreement_id)):
        cats.setdefault(m.agreement_id, {})[m.category_id] = m.account_number
    methods: dict[str, dict[str, int]] = {}
    for p in sess.scalars(
        select(models.PaymentMethodMapping).where(models.PaymentMethodMapping.agreement_id != agreement_id)
    ):
        methods.setdefault(p.agreement_id, {})[p.method_id] = p.account_number
    ids = sorted(set(cats) | set(methods))
    names: dict[str, dict[str, Any]] = {aid: {} for aid in ids}
    if ids:
        M = models.MasterData
        for aid, kind, payload in sess.execute(
            select(M.agreement_id, M.kind, M.payload).where(
                M.agreement_id.in_(ids), M.kind.in_(("roger_categories", "roger_payment_methods"))
            )
        ):
            names[aid][kind] = payload or []
    return [
        Peer(cats.get(aid, {}), methods.get(aid, {}), names[aid].get("roger_categories") or [],
             names[aid].get("roger_payment_methods") or [])
        for aid in ids
    ]  # fmt: skip


def for_agreement(sess: Session, agreement_id: str, snapshots: Mapping[str, Any] | None = None) -> Suggestions:
    """Suggestions for one agreement from the database (its master data, the other agreements' mappings)."""
    if snapshots is None:
        snapshots = masterdata.load(sess, [agreement_id])[agreement_id]
    return suggest(snapshots, peers(sess, agreement_id))
