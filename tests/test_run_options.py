"""``RunOptions``: built once from ``train_flow``'s parameters, checked as the flow checked them.

The flow's parameters are its public schema (deployments, users' calls); everything below
the flow reads one options object. These tests pin the two together: one field per
parameter, nothing lost or invented, and the same user errors the flow raised before it
had the object (``parse_models`` then ``search_inputs``, first thing in the run).
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest
from prefect.states import State

from prefect_sklearn_dask.flow.run_options import RunOptions
from prefect_sklearn_dask.flow.search_task import search_inputs
from prefect_sklearn_dask.flow.train_flow import train_flow
from prefect_sklearn_dask.ml.errors import UserError
from prefect_sklearn_dask.ml.registry import parse_models

DEFAULTS = {n: p.default for n, p in inspect.signature(train_flow.fn).parameters.items()}


def test_one_field_per_flow_parameter_in_the_same_order():
    assert RunOptions.parameter_names() == list(train_flow.parameters.properties)


def test_built_from_the_flow_defaults_keeps_every_value_and_derives_the_rest():
    opts = RunOptions.from_params(**DEFAULTS)
    assert {name: getattr(opts, name) for name in DEFAULTS} == DEFAULTS
    assert opts.names == list(DEFAULTS["models"])
    assert opts.searching is None
    assert opts.storage_root.is_absolute()
    searching = RunOptions.from_params(**{**DEFAULTS, "search": "grid", "storage": "~/x"})
    assert searching.searching is not None and searching.searching.cv == 3
    assert str(searching.storage_root).endswith("/x") and "~" not in str(searching.storage_root)


def test_a_missing_unknown_or_derived_name_is_a_type_error():
    without_seed = {k: v for k, v in DEFAULTS.items() if k != "seed"}
    for params in (without_seed, {**DEFAULTS, "colour": "red"}, {**DEFAULTS, "names": ["rf"]}):
        with pytest.raises(TypeError):
            RunOptions.from_params(**params)


def checks_the_flow_made(params: dict[str, Any]) -> None:
    """What ``train_flow`` ran first before it built ``RunOptions``."""
    parse_models(params["models"])
    search_inputs(
        params["search"],
        params["n_iter"],
        params["cv"],
        params["search_space"],
        params["seed"],
        params["metric"],
        params["max_concurrent"],
    )


BAD = [
    {"models": ["rf", "nope"]},
    {"models": []},
    {"search": "bogus"},
    {"search": "random", "n_iter": 0},
    {"search": "grid", "cv": 1},
    {"search": "grid", "search_space": {"svc": {"Cee": [1]}}},
    {"models": ["nope"], "search": "bogus"},  # the models are checked first
]


@pytest.mark.parametrize("bad", BAD, ids=lambda bad: ",".join(f"{k}={v}" for k, v in bad.items()))
def test_bad_values_raise_what_the_flow_raised(bad):
    params = {**DEFAULTS, **bad}
    with pytest.raises(UserError) as before:
        checks_the_flow_made(params)
    with pytest.raises(type(before.value), match=f"^{re.escape(str(before.value))}$"):
        RunOptions.from_params(**params)


def test_the_flow_run_fails_with_that_error_before_any_runner(prefect_api, tmp_path):
    params = {**DEFAULTS, "models": ["rf", "nope"], "storage": str(tmp_path)}
    with pytest.raises(UserError) as expected:
        RunOptions.from_params(**params)
    state: State = train_flow(**params, return_state=True)
    assert state.is_failed()
    with pytest.raises(UserError, match=re.escape(str(expected.value))):
        state.result()
    assert not any(tmp_path.iterdir())  # nothing written: no model, no fit cache
