"""The thin layer between Airflow and the domain: connections, run windows, task names.

Only this package and ``dags/`` import Airflow; ``roger_economic`` never does.
"""
