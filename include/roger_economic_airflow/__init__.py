"""The thin layer between Airflow and the domain: connections, run windows, task names.

Only this package and ``dags/`` import Airflow; ``roger_economic`` never does.
"""

# the Airflow pool that bounds concurrent e-conomic work (setup creates it: docker-compose's airflow-init, devkit)
ECONOMIC_POOL = "economic_api"
# the Asset the master-data DAG updates and the bills DAG reads
MASTER_DATA_URI = "roger_economic://master_data"
