"""Before/after of the heartbeat patch: an empty ``@flow``, called N times, median wall.

Each side runs in a fresh process (the patch applies on import of the bridge, so the
stock side must never import it), against the server in ``PREFECT_API_URL``:

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m prefect_sklearn_dask.benchmarks.empty_flow
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

MODULE = "prefect_sklearn_dask.benchmarks.empty_flow"


def child(patched: bool, calls: int) -> None:
    from prefect import flow

    if patched:
        from prefect_sklearn_dask.bridge.heartbeat import is_patched

        assert is_patched()

    @flow(name="empty")
    def empty() -> None:
        return None

    empty()  # imports and first API round trips, untimed
    walls = []
    for _ in range(calls):
        started = time.perf_counter()
        empty()
        walls.append(time.perf_counter() - started)
    print(f"{statistics.median(walls):.3f} {min(walls):.3f} {max(walls):.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--child", choices=("stock", "patched"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child == "patched", args.calls)
        return 0
    if not os.environ.get("PREFECT_API_URL"):
        print("error: set PREFECT_API_URL to a running server", file=sys.stderr)
        return 2
    env = {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"}
    for side in ("stock", "patched", "stock", "patched"):
        out = subprocess.run(
            [sys.executable, "-m", MODULE, "--child", side, "--calls", str(args.calls)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        median, low, high = out[-3:]
        print(f"{side:<8} empty @flow x{args.calls}: median {median} s (min {low}, max {high})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
