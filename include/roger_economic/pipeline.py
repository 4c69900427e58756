"""The night the DAGs wire together, step by step, each step for a *group* of agreements.

1. :func:`refresh_master_data` (``steps.refresh``): both sides' master data and the mapping gaps;
2. :func:`extract` (``steps.extract``): the bills changed in the window, staged;
3. :func:`validate` (``steps.validate``): the open bills judged and their entries planned
   (:func:`settled`: a group with nothing to judge or load skips 3 and 4);
4. :func:`load` (``steps.load``): the planned entries posted into e-conomic (``roger_economic.posting``).

How agreements are grouped and each is kept apart from the others inside its group: ``steps.fanout``.
"""

from __future__ import annotations

from roger_economic.model import Window
from roger_economic.steps.extract import extract
from roger_economic.steps.fanout import AgreementsFailed, clients, groups
from roger_economic.steps.load import load
from roger_economic.steps.refresh import refresh_master_data
from roger_economic.steps.validate import settled, validate

__all__ = [
    "AgreementsFailed",
    "Window",
    "clients",
    "extract",
    "groups",
    "load",
    "refresh_master_data",
    "settled",
    "validate",
]
