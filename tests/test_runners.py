"""The cluster-option rules both the CLI and a deployment's flow run apply."""

from __future__ import annotations

import pytest

from prefect_sklearn_dask.bridge.runners import build_task_runner, check_cluster_options
from prefect_sklearn_dask.ml.errors import UserError


def test_no_cluster_options_is_a_plain_local_cluster():
    assert check_cluster_options(None, None, None) is None


@pytest.mark.parametrize(
    ("address", "adapt", "config", "message"),
    [
        ("tcp://127.0.0.1:8786", "1:2", None, "choose one of --address and --adapt"),
        (None, "1:2", "slurm.yaml", "choose one of --adapt and --cluster-config"),
        ("tcp://127.0.0.1:8786", "1:2", "k.yaml", "--address and --adapt and --cluster-config"),
    ],
)
def test_one_cluster_choice_at_a_time(address, adapt, config, message):
    with pytest.raises(UserError, match=message):
        check_cluster_options(address, adapt, config)
    # a deployment's flow run (no CLI in front) applies the same rule
    with pytest.raises(UserError, match=message):
        build_task_runner("dask", address=address, adapt=adapt, cluster_config=config)


def test_tls_files_need_an_address(tmp_path):
    from tests.certs import make_tls

    tls = make_tls(tmp_path)
    files = (tls["ca"], tls["cert"], tls["key"])
    with pytest.raises(UserError, match="need --address"):
        check_cluster_options(None, None, None, *files)
    assert check_cluster_options("tls://127.0.0.1:8786", None, None, *files) is not None
