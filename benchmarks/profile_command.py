"""Parts of a whole-command cProfile: seconds and share of the total (the main thread).

python -m cProfile -o search.prof flows/train.py --runner dask --address A --search grid ...
python benchmarks/profile_command.py search.prof [more.prof ...]

Threads other than the main one (Prefect's, the chart's import thread) are not in a
cProfile, and under load the seconds inflate: compare the shares, not the seconds.
"""

from __future__ import annotations

import pstats
import sys

for path in sys.argv[1:]:
    st = pstats.Stats(path).stats

    def cum(pattern: str, st: dict = st) -> float:
        found = [v[3] for k, v in st.items() if pattern in f"{k[0]}:{k[2]}"]
        return max(found) if found else 0.0

    total = cum("flows/train.py:<module>")
    parts = {
        "imports at start (commands/train.py module)": cum("commands/train.py:<module>"),
        "flow run (run_flow_sync)": cum("flow_engine.py:run_flow_sync"),
        "  train_flow body": cum("flow/train_flow.py:train_flow"),
        "    waiting for fits (gather)": cum("train_flow.py:gather"),
        "    comparison chart (publish_chart)": cum("comparison.py:publish_chart"),
        "    runner exit (performance report)": cum("task_runners.py:__exit__"),
        "    data (prepare)": cum("ml/data.py:prepare"),
        "    artifacts (publish)": cum("artifacts.py:publish"),
    }
    print(f"{path}: total {total:.1f} s")
    for name, value in parts.items():
        print(f"  {name:<42} {value:6.2f} s  {value / total:5.1%}")
