-- Runs once, when the postgres volume is first initialised (docker-entrypoint-initdb.d),
-- as POSTGRES_USER. Creates the project state database next to Airflow's metadata DB;
-- its tables are created by `roger-economic migrate` in airflow-init.
-- On an existing volume this script does not run: create the database by hand with
--   docker compose exec postgres createdb -U airflow roger_economic
CREATE DATABASE roger_economic;
