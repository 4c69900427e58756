"""The Roger sandbox: deterministic bills (:mod:`.data`) served by the contract's API (:mod:`.server`).

Run it with ``python -m sandboxes.roger --port 8081 --companies 3 --bills 40 --seed 7``; see
:mod:`sandboxes.roger.__main__` for every flag and :mod:`sandboxes.roger.server` for the API,
the faults and the control endpoints.
"""

from sandboxes.roger.data import PROBLEM_KINDS, document_pdf, generate_company
from sandboxes.roger.server import RogerHandler, RogerState

__all__ = ["PROBLEM_KINDS", "RogerHandler", "RogerState", "document_pdf", "generate_company"]
