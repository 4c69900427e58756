# Roger -> e-conomic: the official Airflow image, extended with this project's pinned run-time
# requirements (requirements.txt; test and tooling ones are in requirements-dev.txt) and its own
# package (include/roger_economic, include/roger_economic_airflow, with the `roger-economic`
# command). The sandboxes, devkit/, tools/ (demo, benchmark) and tests are not copied: the
# sandbox services of docker-compose.yaml mount ./sandboxes.
#
# Follows https://airflow.apache.org/docs/docker-stack/build.html ("extending the image"):
# Python packages are installed as the `airflow` user, never at container start-up
# (no _PIP_ADDITIONAL_REQUIREMENTS). The Airflow version pinned in requirements.txt must
# match the tag below, so pip never swaps the Airflow that ships in the image.
FROM apache/airflow:3.3.2-python3.11

USER airflow

COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt

# Editable install: the package is imported from /opt/airflow/include, which
# docker-compose.yaml also mounts from the working tree, so code edits are live.
COPY --chown=airflow:0 pyproject.toml /opt/airflow/pyproject.toml
COPY --chown=airflow:0 include /opt/airflow/include
RUN pip install --no-cache-dir --no-deps -e /opt/airflow
