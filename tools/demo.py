"""The demo: both sandboxes, three agreements, both DAGs through ``dag.test()``, a table.

    .venv/bin/python tools/demo.py

Migrates the databases (SQLite under .airflow/), starts the Roger and
e-conomic sandboxes, loads config/agreements.example.yaml, runs
``roger_master_data`` and then ``roger_bills_to_economic`` for the sandbox
window, prints a per-agreement table, and runs the bills DAG a second time to
show that it books nothing new. State is kept in .airflow/ between invocations,
so running the command again books nothing new either (``--fresh`` starts over;
the e-conomic sandbox itself starts empty each time, as a stand-in).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT)]  # the package, and the sandboxes and devkit beside it

from devkit import local  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bills", type=int, default=40, help="bills per agreement in the Roger sandbox")
    parser.add_argument("--fresh", action="store_true", help="forget what earlier demo runs booked")
    args = parser.parse_args()

    home = ROOT / ".airflow"
    if args.fresh and home.exists():
        shutil.rmtree(home)
    local.configure(home)
    print("migrating databases …")
    local.migrate_airflow()
    from roger_economic.config import load_file
    from roger_economic.db import migrate

    migrate()
    roger, economic = local.start_sandboxes(agreements=3, bills=args.bills)
    try:
        print(f"Roger sandbox {roger.base_url}, e-conomic sandbox {economic.base_url}")
        load_file(ROOT / "config" / "agreements.example.yaml")
        local.ensure_pool()

        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(ROOT / "dags"))
        if bag.import_errors:
            print(bag.import_errors)
            return 1
        conf = {"from_date": "2026-10-01", "to_date": "2026-11-26"}
        print("running roger_master_data …")
        bag.get_dag("roger_master_data").test()
        from roger_economic import report

        agreements = ["agr_0001", "agr_0002", "agr_0003"]
        for attempt in ("first run", "second run (must book nothing new)"):
            print(f"running roger_bills_to_economic, {attempt} …")
            run = bag.get_dag("roger_bills_to_economic").test(run_conf=conf)
            result = report.build(run.run_id, agreements)
            print(f"\n{attempt}: {run.run_id} → {run.state}")
            print(report.table(result))
            print()
        return 0
    finally:
        roger.stop()
        economic.stop()


if __name__ == "__main__":
    raise SystemExit(main())
