"""Roger → e-conomic: the domain, free of Airflow.

Bills come from Roger (``roger``), are checked (``validation``), turned into
journal rows (``transform``) and booked exactly once (``loader``) into
e-conomic (``economic``). State lives in a database (``db``). The DAGs in
``dags/`` only wire the steps of ``pipeline`` together.
"""
