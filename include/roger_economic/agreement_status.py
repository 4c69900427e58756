"""What the project learned about each agreement (the ``agreement_status`` row): written only by :func:`write`.

The master-data refresh records API access, the scanning add-on and the mapping gaps; the extract its
watermark; validation what the open bills were judged against; the run report the last outcome; the
UI the gaps of a saved setup and what ``/self`` said.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from roger_economic.db import in_chunks, models

FIELDS = frozenset(c.name for c in models.AgreementStatus.__table__.columns) - {"agreement_id"}
# the end of the last window extracted in full only moves forward: an older window run late (a backfill)
# must not make the next night start later than it should, nor earlier than it must
FORWARD_ONLY = frozenset({"extracted_until"})


def write(sess: Session, changes: Mapping[str, Mapping[str, Any]]) -> dict[str, models.AgreementStatus]:
    """Set the named fields of each agreement's status (``{agreement: {field: value}}``), for a group at once.

    A missing row is created. Returns the rows written, by agreement.
    """
    unknown = {name for fields in changes.values() for name in fields} - FIELDS
    if unknown:
        raise ValueError(f"agreement_status has no field {', '.join(sorted(unknown))}")
    status = models.AgreementStatus
    ids = list(changes)
    rows = {
        row.agreement_id: row
        for chunk in in_chunks(ids)
        for row in sess.scalars(select(status).where(status.agreement_id.in_(chunk)))
    }
    forward: dict[tuple[str, Any], list[str]] = defaultdict(list)  # (field, value) → existing agreements
    for aid, fields in changes.items():
        row = rows.get(aid)
        if row is None:
            row = rows[aid] = status(agreement_id=aid, **{"mapping_gaps": [], "last_counts": {}, **fields})
            sess.add(row)
            continue
        for name, value in fields.items():
            if name in FORWARD_ONLY:
                forward[(name, value)].append(aid)
            else:
                setattr(row, name, value)
    for (name, value), aids in forward.items():  # one conditional UPDATE: a later value written meanwhile stays
        column = getattr(status, name)
        for chunk in in_chunks(aids):
            sess.execute(
                update(status)
                .where(status.agreement_id.in_(chunk), or_(column.is_(None), column < value))
                .values({name: value})
                .execution_options(synchronize_session=False)
            )
    return rows
