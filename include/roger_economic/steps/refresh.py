"""Step 1, master data: both sides' accounts, journals, suppliers, categories and methods, and the gaps
in an agreement's mappings they show (the UI and the stop reasons read them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from roger_economic import agreement_status, masterdata
from roger_economic.context import load_contexts
from roger_economic.credentials import Endpoints
from roger_economic.db import session
from roger_economic.errors import AgreementStopped, AuthError
from roger_economic.steps.fanout import LOAD_THREADS, clients, each, settings_of


def refresh_master_data(agreement_ids: list[str], endpoints: Endpoints, run_id: str) -> dict[str, Any]:
    settings = settings_of(agreement_ids)

    def work(aid: str) -> dict[str, Any]:
        economic, roger = clients(settings[aid], endpoints)
        try:
            try:
                snaps = masterdata.fetch(economic, roger)
            except AuthError as exc:
                with session() as sess:
                    agreement_status.write(sess, {aid: {"api_access": False, "master_data_error": str(exc)}})
                raise AgreementStopped(aid, f"token rejected: {exc}") from None
        finally:
            economic.close()
            roger.close()
        with session() as sess:
            masterdata.save(sess, aid, snaps)
            ctx = load_contexts(sess, [aid])[aid]
            row = ctx.settings  # the stored setup, as every step reads it
            gaps = masterdata.mapping_gaps(row, ctx.categories, ctx.methods, snaps)
            if not masterdata.has_scanning(snaps):
                gaps.append(
                    {
                        "kind": "scanning_addon",
                        "item": "Indscanning",
                        "stops": "attachments" if not row.book_without_attachment else "nothing",
                        "message": "the e-conomic agreement lacks the scanning add-on (Indscanning): "
                        + (
                            "bills are booked without their PDF"
                            if row.book_without_attachment
                            else "bills wait until it is enabled or book_without_attachment is set"
                        ),
                    }
                )
            found = {
                "scanning_addon": masterdata.has_scanning(snaps),
                "api_access": True,
                "mapping_gaps": gaps,
                "master_data_at": datetime.now(UTC),
                "master_data_error": None,
            }
            agreement_status.write(sess, {aid: found})
        return {
            "accounts": len(snaps["accounts"]),
            "suppliers": len(snaps["suppliers"]),
            "categories": len(snaps["roger_categories"]),
            "gaps": len(gaps),
        }

    return each(agreement_ids, work, run_id, "masterdata", threads=LOAD_THREADS)
