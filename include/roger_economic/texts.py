"""Entry texts: readable, at most 250 characters, always ending in the Roger bill id."""

from __future__ import annotations

from collections.abc import Collection

TEXT_MAX = 250
INVOICE_NUMBER_MAX = 30
KIND_WORDS = {"bill": "faktura", "receipt": "kvittering", "credit_note": "kreditnota"}


def marker(bill_id: str) -> str:
    """The part of every text that finds the entry again (``text$like:``)."""
    return f"[{bill_id}]"


def entry_text(vendor: str, document_type: str, invoice_number: str | None, bill_id: str, payment: bool) -> str:
    word = "betaling" if payment else KIND_WORDS.get(document_type, "faktura")
    middle = f"{word} {invoice_number}" if invoice_number else word
    tail = f" {middle} {marker(bill_id)}"
    room = TEXT_MAX - len(tail)
    name = " ".join((vendor or "").split())
    if room <= 0:  # an absurd invoice number: keep the id, cut the rest
        return f"{middle[: TEXT_MAX - len(marker(bill_id)) - 1]} {marker(bill_id)}"
    if len(name) > room:
        name = name[: max(room - 1, 0)].rstrip() + "…"
    return f"{name}{tail}".strip()


def bill_id_in(text: str, known: Collection[str] | None = None) -> str | None:
    """The bill id whose marker ends ``text``.

    With ``known`` (the ids looked for), the longest one among them: the Roger contract allows any string as
    an id, so an id may itself hold ``[`` or ``]`` and the last ``[`` is not always where the marker starts.
    """
    end = text.rfind("]")
    if known is None:
        start = text.rfind("[", 0, end)
        return text[start + 1 : end] if 0 <= start < end else None
    starts = [i for i, char in enumerate(text[:end]) if char == "["]
    return next((text[i + 1 : end] for i in starts if text[i + 1 : end] in known), None)
