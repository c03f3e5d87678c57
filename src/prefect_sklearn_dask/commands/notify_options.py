"""``flows/serve.py``'s notification options: ``--notify URL`` and the commands that manage it.

    python flows/serve.py --cron "0 3 * * *" --notify https://hooks.example.com/T0/B0
    python flows/serve.py --notify http://127.0.0.1:9000/hook --notify-stuck-after 45m
    python flows/serve.py --list-notifications
    python flows/serve.py --remove-notifications

Everything the user typed is checked before the server or the deployment is touched;
an unreachable receiver is only a warning (it may come up before the first message).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from urllib.parse import urlsplit
from uuid import UUID

from prefect_sklearn_dask.ml.errors import UserError

DEFAULT_STUCK_AFTER = "1h"


def add_notify_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "notifications (Prefect automations on the server, sent through a webhook block)"
    )
    group.add_argument(
        "--notify",
        metavar="URL",
        help="POST a message to this http(s) webhook when a run fails or crashes, runs too "
        "long, or finds a better model",
    )
    group.add_argument(
        "--notify-stuck-after",
        metavar="DURATION",
        default=DEFAULT_STUCK_AFTER,
        help="with --notify: a run Running longer than this is reported (90s, 45m, 2h, 1d)",
    )
    group.add_argument(
        "--list-notifications",
        action="store_true",
        help="list this deployment's notification automations and exit",
    )
    group.add_argument(
        "--remove-notifications",
        action="store_true",
        help="delete this deployment's notification automations and webhook block, and exit",
    )


def check_notify_args(args: argparse.Namespace) -> None:
    """Offline checks: an http(s) URL, a positive duration, one management command."""
    from prefect_sklearn_dask.notify.automations import check_webhook_url, parse_duration

    if args.list_notifications and args.remove_notifications:
        raise UserError("pass --list-notifications or --remove-notifications, not both")
    if args.notify is not None:
        if args.list_notifications or args.remove_notifications:
            raise UserError("--notify serves the deployment; list or remove without it")
        args.notify = check_webhook_url(args.notify)
    args.notify_stuck_after = parse_duration(args.notify_stuck_after)


def manage_notifications(args: argparse.Namespace, deployment: str) -> None:
    """Run ``--list-notifications`` or ``--remove-notifications``."""
    from prefect_sklearn_dask.notify.automations import list_notifications, remove_notifications

    if args.list_notifications:
        lines = list_notifications(deployment)
        print("\n".join(lines) if lines else f"no notifications for {deployment}")
    elif args.remove_notifications:
        print(f"removed {remove_notifications(deployment)} automation(s) of {deployment}")


def set_up_notifications(
    args: argparse.Namespace, deployment: str, apply: Callable[[], UUID], ui_url: str
) -> None:
    """With ``--notify``: register the deployment (``apply``) and sync its automations."""
    from prefect_sklearn_dask.masking import mask
    from prefect_sklearn_dask.notify.automations import receiver_problem, sync_notifications

    if args.notify is None:
        return
    problem = receiver_problem(args.notify)
    if problem is not None:
        where = urlsplit(args.notify)  # the path of a webhook URL is often its secret
        print(
            mask(
                f"warning: the notification receiver at {where.scheme}://{where.netloc} did "
                f"not answer ({problem}); the automations are created anyway and will post "
                "to it once it is up"
            ),
            file=sys.stderr,
        )
    synced = sync_notifications(apply(), deployment, args.notify, ui_url, args.notify_stuck_after)
    print(
        f"notifications for {deployment}: {len(synced.created)} automation(s) created, "
        f"{len(synced.updated)} updated (--list-notifications, --remove-notifications)",
        file=sys.stderr,
    )
