"""The ``search`` benchmark: the project's ``--search grid`` vs sklearn+joblib-dask vs raw Dask.

python benchmarks/search.py                        # 108 and 1,002 fits, 2 workers, 3 repeats
python benchmarks/search.py --sizes small --repeats 5
python benchmarks/search.py --quick                # 36 fits, 1 repeat (CI)

Same warm LocalCluster, same fits (the models' grids x 3 folds); prints a markdown table
(median walls, ratio to raw Dask, bytes sent to workers per fit), writes JSON under
``--out`` and a ``search-benchmark`` table artifact on its ``benchmark-search`` flow run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from prefect_sklearn_dask.cli import quiet_environment, run_cli  # noqa: E402

quiet_environment()

from prefect import flow, get_run_logger  # noqa: E402

from prefect_sklearn_dask.benchmarks import search_bench  # noqa: E402
from prefect_sklearn_dask.ml.errors import UserError  # noqa: E402
from prefect_sklearn_dask.server.process import DEFAULT_PORT  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/search.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="36 fits, 1 repeat (CI)")
    parser.add_argument("--sizes", default="small,large", help="from: small, large")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    parser.add_argument("--repeats", type=int, help="repeats per backend (default 3; quick 1)")
    parser.add_argument("--out", default="results", help="folder for the JSON")
    parser.add_argument("--server-port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in search_bench.SIZES]
    if unknown or not sizes:
        raise UserError(f"unknown --sizes {', '.join(unknown) or '(none)'}; choose small, large")
    args.size_specs = (
        {"quick": search_bench.QUICK} if args.quick else {s: search_bench.SIZES[s] for s in sizes}
    )
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.repeats < 1 or args.workers < 1:
        raise UserError("--repeats and --workers must be at least 1")
    return args


@flow(name="benchmark-search")
def benchmark_search(sizes: dict, workers: int, repeats: int) -> list[dict]:
    from distributed import Client, LocalCluster
    from prefect.artifacts import create_table_artifact

    from prefect_sklearn_dask.cluster.local import local_cluster_kwargs

    logger = get_run_logger()
    with (
        tempfile.TemporaryDirectory() as storage,
        LocalCluster(**local_cluster_kwargs(workers, dashboard_port=0)) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        rows = search_bench.run(client, sizes, repeats, storage, log=logger.info)
    create_table_artifact(
        table=rows,
        key="search-benchmark",
        description=f"Grid search, {workers} workers, medians of {repeats}",
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prefect_sklearn_dask.server.process import ensure_server

    server = ensure_server(port=args.server_port)
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        rows = benchmark_search(args.size_specs, args.workers, args.repeats)
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"search-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"workers": args.workers, "repeats": args.repeats, "rows": rows}))
    print(search_bench.table(rows))
    print(f"\nfile: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
