"""Serve ``train-flow`` as deployment ``train-flow/TrainClassifiers``, scheduled or on demand.

    python flows/serve.py                                   # on demand only
    python flows/serve.py --cron "0 3 * * *" --timezone Europe/Berlin
    python flows/serve.py --interval 3600
    python flows/serve.py --rrule "FREQ=WEEKLY;BYDAY=MO"
    python flows/serve.py --dataset data.csv --target label --models rf,hgb --cron "0 3 * * *"
    prefect deployment run 'train-flow/TrainClassifiers' -p runner=dask -p models='["rf","hgb"]'

Runs are executed by this process (Prefect's ``flow.serve``) against the project's
Prefect server; Ctrl-C stops serving. The training options (the same as
``flows/train.py``'s, checked now) become the deployment's default parameters;
``prefect deployment run -p`` overrides them per run.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prefect_sklearn_dask.cli import HelpFormatter, fast_imports, quiet_environment, run_cli

quiet_environment()

with fast_imports():
    from prefect_sklearn_dask.commands.notify_options import (
        add_notify_arguments,
        check_notify_args,
        manage_notifications,
        set_up_notifications,
    )
    from prefect_sklearn_dask.commands.options import (
        add_training_arguments,
        validate_training_args,
    )
    from prefect_sklearn_dask.ml.errors import UserError
    from prefect_sklearn_dask.server.process import DEFAULT_PORT, ensure_server

DEPLOYMENT_NAME = "TrainClassifiers"
DEPLOYMENT = f"train-flow/{DEPLOYMENT_NAME}"


def build_schedule(
    cron: str | None, interval: float | None, rrule: str | None, timezone: str | None
):
    """One Prefect schedule from the flags, or None; a bad string is a one-line UserError."""
    from prefect.schedules import Cron, Interval, RRule

    given = [
        name
        for name, value in (("cron", cron), ("interval", interval), ("rrule", rrule))
        if value is not None
    ]
    if len(given) > 1:
        raise UserError(f"pass one schedule, not {' and '.join('--' + g for g in given)}")
    if timezone:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise UserError(
                f"unknown timezone {timezone!r}; use an IANA name such as Europe/Berlin"
            ) from None
    if interval is not None and interval <= 0:
        raise UserError(f"--interval must be a positive number of seconds, got {interval}")
    try:
        if cron is not None:
            return Cron(cron, timezone=timezone)
        if rrule is not None:
            return RRule(rrule, timezone=timezone)
        if interval is not None:
            return Interval(timedelta(seconds=interval), timezone=timezone)
    except ValueError as exc:
        kind = given[0]
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"bad --{kind} schedule: {first}") from None
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python flows/serve.py",
        description=f"Serve train-flow as the deployment 'train-flow/{DEPLOYMENT_NAME}'. "
        "The training options are the deployment's default parameters.",
        formatter_class=HelpFormatter,
    )
    add_training_arguments(parser)
    when = parser.add_argument_group("schedule (at most one; none = on demand)")
    when.add_argument("--cron", help='cron string, e.g. "0 3 * * *"')
    when.add_argument("--interval", type=float, help="seconds between runs")
    when.add_argument("--rrule", help='RFC 5545 rule, e.g. "FREQ=WEEKLY;BYDAY=MO"')
    parser.add_argument("--timezone", help="IANA timezone of the schedule (default UTC)")
    parser.add_argument("--limit", type=int, help="at most this many flow runs at once")
    parser.add_argument(
        "--server-port", type=int, default=DEFAULT_PORT, help="port of the project's Prefect server"
    )
    add_notify_arguments(parser)
    args = parser.parse_args(argv)

    check_notify_args(args)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if args.list_notifications or args.remove_notifications:
        server = ensure_server(port=args.server_port)
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            manage_notifications(args, DEPLOYMENT)
        return 0
    schedule = build_schedule(args.cron, args.interval, args.rrule, args.timezone)
    parameters = validate_training_args(args)
    server = ensure_server(port=args.server_port)

    from prefect.deployments.runner import EntrypointType

    from prefect_sklearn_dask.flow.train_flow import train_flow

    deployment = {
        "name": DEPLOYMENT_NAME,
        "schedules": [schedule] if schedule else None,
        "parameters": parameters,
        "entrypoint_type": EntrypointType.MODULE_PATH,
        "tags": ["train-flow"],
    }
    print(f"serving {DEPLOYMENT} on {server.ui_url}", file=sys.stderr)
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        set_up_notifications(
            args, DEPLOYMENT, lambda: train_flow.to_deployment(**deployment).apply(), server.ui_url
        )
        train_flow.serve(limit=args.limit, **deployment)
    return 0


def cli() -> None:
    """The console script (and ``flows/*.py``): exit with ``main``'s code."""
    sys.exit(run_cli(main))
