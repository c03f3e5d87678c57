"""Prefect layer: the ``train-flow`` flow, its tasks, runners, server and model store."""
