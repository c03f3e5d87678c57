"""Local-only by default: everything the project starts binds 127.0.0.1 unless told otherwise.

Read from the operating system: the sockets the started server and cluster processes
listen on (psutil), not the arguments they were given.
"""

from __future__ import annotations

import contextlib

import psutil
import pytest

from prefect_sklearn_dask.cli import warn_if_exposed
from prefect_sklearn_dask.cluster.local import local_cluster_kwargs
from prefect_sklearn_dask.server.process import prefect_home


def listening(processes: list[psutil.Process]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket these processes listen on."""
    found = set()
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            for conn in process.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN:
                    found.add((conn.laddr.ip, conn.laddr.port))
    return found


def with_children(process: psutil.Process) -> list[psutil.Process]:
    return [process, *process.children(recursive=True)]


def test_local_clusters_bind_loopback_by_default():
    """A cluster from the project's defaults (as ``--runner dask`` and ``cluster/local.py``
    build it; the dashboard on a free port instead of 8787): scheduler, dashboard, nanny
    and worker all listen on 127.0.0.1 only."""
    from distributed import LocalCluster

    me = psutil.Process()
    before = listening(with_children(me))
    with LocalCluster(**local_cluster_kwargs(1, dashboard_port=0)) as cluster:
        opened = listening(with_children(me)) - before
        by_workers = listening(me.children(recursive=True))
        scheduler_port = int(cluster.scheduler_address.rsplit(":", 1)[1])
        dashboard_port = int(cluster.dashboard_link.split(":")[2].split("/")[0])
    ports = {port for _, port in opened}
    assert {scheduler_port, dashboard_port} <= ports, opened
    assert len(by_workers) >= 2, by_workers  # a nanny and its worker, each on its own port
    assert {address for address, _ in opened} == {"127.0.0.1"}, opened


def test_the_server_binds_loopback_by_default(prefect_api):
    """The session's server (tests/conftest.py) is ``start_server`` with its default host."""
    pid = int((prefect_home() / "server.pid").read_text())
    sockets = listening(with_children(psutil.Process(pid)))
    port = int(prefect_api.rsplit(":", 1)[1].split("/")[0])
    assert ("127.0.0.1", port) in sockets, sockets
    assert {address for address, _ in sockets} == {"127.0.0.1"}, sockets


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
def test_binding_wider_warns(host, capsys):
    assert warn_if_exposed(host, "the thing")
    err = capsys.readouterr().err
    assert err.startswith("warning: the thing will listen on") and host in err


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_is_silent(host, capsys):
    assert not warn_if_exposed(host, "the thing")
    assert capsys.readouterr().err == ""
