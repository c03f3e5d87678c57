"""Measure every runner side by side on the same workloads; report medians, ratios and goals.

python benchmarks/compare.py                  # full suite, a few minutes on a laptop
python benchmarks/compare.py --quick          # under a minute; CI runs this
python benchmarks/compare.py --workers 1,2,4 --repeats 5 --workload seed,grid,tiny,bigdata
python benchmarks/compare.py --workload search --workers 1,2   # the hyper-parameter search

The suite is a Prefect flow (``benchmark-suite``); every Prefect backend's run is a
``bench-prefect`` flow run of its own, so all of it, task runs included, is on the server.
Results: a table and goal lines here, JSON + CSV + a bokeh chart under ``--out``, and
three artifacts (table, summary with the goals, chart link) on the suite's flow run.

The code: ``prefect_sklearn_dask.commands.compare`` (``--help`` for options).
"""

from prefect_sklearn_dask.commands.compare import cli

if __name__ == "__main__":  # Dask's spawned worker processes import this file too
    cli()
