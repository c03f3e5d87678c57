"""Prefect on Dask: a fast drop-in task runner, runner building, worker set-up, Dask faults.

Importing it ends each synchronous flow run when its work ends rather than up to a
second later (:mod:`.heartbeat`, Prefect 3.9 only).
"""

from prefect_sklearn_dask.bridge.heartbeat import patch_heartbeat_wait

patch_heartbeat_wait()
