"""What a group's marks of the suppliers to create say: made by another run since the contexts were read
(taken, not marked), left ``creating`` by an interrupted attempt (looked up first), new (created at once)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from roger_economic.context import load_contexts
from roger_economic.db import models, session
from roger_economic.posting.suppliers import mark_creating
from tests.domain.posting.test_group_records import _ids


def _vendors(*keys: str) -> dict[str, dict[str, str]]:
    return {key: {"key": key, "how": "create", "name": key} for key in keys}


def test_a_group_s_marks_say_which_suppliers_to_look_up_first_and_take_those_made_meanwhile(project_db):
    a, b = _ids(project_db)[:2]
    with session() as sess:
        contexts = load_contexts(sess, [a, b])
    now = datetime.now(UTC)
    with session() as sess:  # after the contexts were read: one made by another run, one interrupted
        for key, number, how in (("cvr:1", 7, "created"), ("cvr:2", None, "creating")):
            link = models.SupplierLink(agreement_id=a, vendor_key=key, supplier_number=number, how=how, created_at=now)
            sess.add(link)

    with session() as sess:
        marked = mark_creating(
            sess,
            {a: (contexts[a], _vendors("cvr:1", "cvr:2", "cvr:3")), b: (contexts[b], _vendors("cvr:1"))},
        )

    assert marked == {a: {"cvr:2": True, "cvr:3": False}, b: {"cvr:1": False}}
    assert contexts[a].supplier_links.get("cvr:1") == 7 and "cvr:1" not in contexts[b].supplier_links
    link = models.SupplierLink
    with session() as sess:
        links = set(sess.execute(select(link.agreement_id, link.vendor_key, link.how, link.supplier_number)))
    assert links == {
        (a, "cvr:1", "created", 7),
        (a, "cvr:2", "creating", None),
        (a, "cvr:3", "creating", None),
        (b, "cvr:1", "creating", None),
    }
