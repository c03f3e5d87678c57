"""What every command-line entry point shares: quiet libraries and one-line user errors."""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
from collections.abc import Callable, Iterator

from prefect_sklearn_dask.ml.errors import UserError

QUIET_ENV = {
    # Dask's INFO chatter (worker start/stop) would bury the progress lines.
    "DASK_LOGGING__DISTRIBUTED": "warning",
    # Offline machines: Prefect's telemetry would fail noisily.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}


def quiet_environment() -> None:
    """Set before Dask or Prefect are imported; worker processes inherit it."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def fast_imports() -> Iterator[None]:
    """Import a command's libraries with CPython's cyclic collector paused, then freeze them.

    Importing Prefect, Dask and scikit-learn builds millions of objects that live as long
    as the process, and the collector re-scanned them at every threshold it crossed: 1.0
    of train.py's 3.4 s of imports (medians of 7 processes, benchmarks/README.md). Frozen
    (``gc.freeze``, as the gc docs advise for objects made at start-up), later collections
    skip them too; only garbage cycles made during the imports stay uncollected.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


class HelpFormatter(argparse.HelpFormatter):
    """``--help`` that shows a default only where it tells the reader something.

    ``ArgumentDefaultsHelpFormatter`` printed ``(default: True)`` after ``--no-cache``
    (the value of ``dest``, the opposite of what the flag does) and ``(default: None)``
    after every option that is simply off. Here flags, ``None`` defaults and help texts
    that already say their default get nothing added.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or "%(default)" in text
            or default in (None, argparse.SUPPRESS)
            or isinstance(default, bool)
            or action.nargs == 0
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def warn_if_exposed(host: str, what: str, protected_by: str | None = None) -> bool:
    """Say so on stderr when ``what`` will listen beyond this machine; True if it warned.

    ``protected_by`` says what guards it (e.g. "with authentication and TLS"); without
    it the warning says there is neither.
    """
    if host in LOOPBACK:
        return False
    guard = protected_by or "without TLS or authentication"
    print(
        f"warning: {what} will listen on {host}, reachable from other machines, {guard}",
        file=sys.stderr,
    )
    return True


def fail(message: str, code: int = 2) -> int:
    from prefect_sklearn_dask.masking import mask

    print(f"error: {mask(message)}", file=sys.stderr)
    return code


def _masked_excepthook(kind, value, tb) -> None:
    """Unexpected errors keep their traceback (it is a bug report) but lose any secret."""
    import traceback

    from prefect_sklearn_dask.masking import mask

    sys.stderr.write(mask("".join(traceback.format_exception(kind, value, tb))))


def run_cli(main: Callable[[], int]) -> int:
    """Run ``main``: a :class:`UserError` becomes one line on stderr and exit code 2.

    Every line printed here, and any traceback, has URL passwords and secret settings
    masked (:mod:`.masking`; not named `secrets`: for scripts run from flows/ that
    would shadow the stdlib module).
    """
    sys.excepthook = _masked_excepthook
    try:
        return main()
    except UserError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        # The collection CPython makes as it tears the interpreter down walks every object
        # of the run: 0.64 s of train.py's exit, after its last line (0.05 s frozen).
        # atexit handlers and finalizers still run.
        gc.freeze()
