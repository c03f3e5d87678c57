"""The ``train-flow`` flow: its tasks, artifacts and model store."""
