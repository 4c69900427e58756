"""Roger → e-conomic: the domain, free of Airflow.

Bills come from Roger (``roger``), are checked (``validation``), turned into
journal rows (``transform``) and booked exactly once (``posting``) into
e-conomic (``economic``). State lives in a database (``db``); where a bill, a
ledger row and a step stand is ``states``. The DAGs in ``dags/`` only wire the
steps of ``pipeline`` together (one module each in ``steps``).
"""
