"""Local-only by default: everything the project starts binds 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import inspect

import pytest

from prefect_sklearn_dask.cli import warn_if_exposed
from prefect_sklearn_dask.cluster.local import local_cluster_kwargs
from prefect_sklearn_dask.server.process import DEFAULT_HOST, start_server


def test_local_clusters_bind_loopback_by_default():
    kwargs = local_cluster_kwargs(2)
    assert kwargs["host"] == "127.0.0.1"
    assert kwargs["dashboard_address"].startswith("127.0.0.1:")


def test_the_server_binds_loopback_by_default():
    assert DEFAULT_HOST == "127.0.0.1"
    assert inspect.signature(start_server).parameters["host"].default == "127.0.0.1"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
def test_binding_wider_warns(host, capsys):
    assert warn_if_exposed(host, "the thing")
    err = capsys.readouterr().err
    assert err.startswith("warning: the thing will listen on") and host in err


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_is_silent(host, capsys):
    assert not warn_if_exposed(host, "the thing")
    assert capsys.readouterr().err == ""
