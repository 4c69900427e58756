"""Posting planned entries into e-conomic, exactly once.

For one agreement, in this order (what it starts from is read for a whole group
at once by :func:`work.read_work`, and the bills' states are settled for the group at
the end by :func:`settle.settle_bill_states`):
1. recover rows left ``posting`` by a crash or a lost answer, by looking their
   bill ids up among the journal's draft entries (found: posted; not found:
   planned again);
2. withdraw or replace entries whose bill changed or was deleted in Roger
   (drafts are deleted; booked entries become review items, never edited);
3. create missing suppliers (once, under the ``create`` policy: :mod:`suppliers`; a group marks the new
   suppliers of its agreements that need no recovery ``creating`` at its start, in one transaction);
4. post the planned vouchers in batches, one POST per journal and batch, with a
   ledger row marked ``posting`` *before* the call and an idempotency key that
   a retry of the same batch repeats; the answer (``posted``, voucher numbers)
   is written first in the load's next transaction, else after the load ends,
   with its group's next write a second later (:mod:`records`; a crash before
   it leaves the rows ``posting``: step 1 finds them);
5. attach each invoice's PDF.

Modules, in the order a load uses them: :mod:`ledger` (planning entries, what counts as booked),
:mod:`work` (what a load starts from), :mod:`leases` (one run per agreement at a time),
:mod:`loader` (steps 1, 2, 4 and 5), :mod:`suppliers` (step 3), :mod:`records` (what e-conomic answered,
written for many agreements at once), :mod:`settle` (the bills' states after).
"""
