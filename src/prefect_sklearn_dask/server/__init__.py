"""The project's persistent local Prefect server: start, find, stop."""
