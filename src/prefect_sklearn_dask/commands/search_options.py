"""The ``--search`` options of ``flows/train.py``: their definitions and checks in one place.

parser = argparse.ArgumentParser()
add_search_arguments(parser)
args = parser.parse_args(["--search", "random", "--n-iter", "20"])
validate(args)        # UserError on bad input; sets args.cv, reads args.search_space

Hooked into :mod:`.options`, so ``flows/train.py`` and ``flows/serve.py`` both take them;
``--search-space`` is read here and the flow (or the deployment) gets its contents.
"""

from __future__ import annotations

import argparse

from prefect_sklearn_dask.ml.optuna_space import PRUNERS, check_optuna
from prefect_sklearn_dask.ml.registry import parse_models
from prefect_sklearn_dask.ml.search import SEARCH_KINDS, check_options
from prefect_sklearn_dask.ml.search_space import load_space_file


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the search options as one argument group."""
    group = parser.add_argument_group(
        "hyper-parameter search",
        "one Prefect task run per model (search-<model>); its candidate x fold fits run as "
        "plain Dask work on the same cluster (threads without Dask); --cv 0 means 3 folds here",
    )
    group.add_argument(
        "--search",
        default="none",
        metavar="{none," + ",".join(SEARCH_KINDS) + "}",
        help="none: one fit per model with its defaults; grid: every grid point; random: "
        "--n-iter samples of each model's distributions; halving: successive halving over "
        "--n-iter samples with training rows as the resource; optuna: --n-iter trials of "
        "Optuna's TPE sampler, folds pruned by --pruner, the study kept beside the fit cache",
    )
    group.add_argument(
        "--n-iter",
        type=int,
        default=10,
        help="candidates per model (random, halving; trials with optuna)",
    )
    group.add_argument(
        "--pruner",
        metavar="{" + ",".join(PRUNERS) + "}",
        help="with --search optuna: stop a poor trial between its folds (default median; "
        "hyperband; none)",
    )
    group.add_argument(
        "--search-space",
        metavar="FILE.yaml",
        help="replace models' grids/distributions: {model: {param: [values] or "
        '"loguniform(0.001, 100)"}}',
    )
    # --cv is a training option; with a search its 0 (off) means 3 folds.


def validate(args: argparse.Namespace) -> None:
    """Check the search options (UserError: one line, exit 2); sets the folds and the space.

    ``--search`` is validated here rather than with argparse ``choices`` so a typo is the
    project's one ``error:`` line like every other bad input.
    """
    raw = load_space_file(args.search_space) if args.search_space else None
    args.cv, spaces = check_options(args.search, args.n_iter, args.cv, raw)
    args.pruner = check_optuna(args.search, args.pruner, parse_models(args.models), spaces)
    args.search_space = raw  # the flow parameter is the space itself, not a local path
