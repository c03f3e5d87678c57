"""Keep secrets out of everything the project prints or stores.

A database URL such as ``postgresql+asyncpg://prefect:PASSWORD@host/db`` (Prefect's
``PREFECT_API_DATABASE_CONNECTION_URL``) or an API key can reach an error message, a
log line or an artifact by way of a traceback or a parameter echoed back. Every such
text goes through :func:`mask` first: the password part of any URL, and the value of
every secret setting present in the environment, become ``***``.

    mask("postgresql://u:pw@127.0.0.1/db")  ->  "postgresql://u:***@127.0.0.1/db"
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any
from urllib.parse import urlsplit

MASK = "***"
# scheme://user:password@  (the user part may be empty; the password has no '@' or space)
URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^\s:/@]*:)(?P<secret>[^\s@/]+)(?=@)")
SECRET_ENV = (
    "PREFECT_API_KEY",
    "PREFECT_API_AUTH_STRING",
    "PREFECT_SERVER_API_AUTH_STRING",
    "PREFECT_API_DATABASE_PASSWORD",
    "PREFECT_SERVER_DATABASE_PASSWORD",
)
URL_ENV = ("PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL")


def secret_values() -> list[str]:
    """Secret values set in this process's environment (API keys, database passwords)."""
    values = [os.environ[key] for key in SECRET_ENV if os.environ.get(key)]
    for key in URL_ENV:
        url = os.environ.get(key)
        if url:
            try:
                password = urlsplit(url).password
            except ValueError:
                password = None
            if password:
                values.append(password)
    # Longest first, and never mask a string so short it would garble ordinary text.
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def mask(text: Any) -> str:
    """``text`` with URL passwords and known secret values replaced by ``***``."""
    masked = URL_PASSWORD.sub(lambda m: m["head"] + MASK, str(text))
    for value in secret_values():
        masked = masked.replace(value, MASK)
    return masked


class MaskingFilter(logging.Filter):
    """A handler filter: the record's final message is masked before any handler emits it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            if mask(text) != text:
                record.msg = f"{record.msg}\n{mask(text)}"
                record.exc_info, record.exc_text = None, None
        return True


_FILTER = MaskingFilter()


def add_handler_filter(log_filter: logging.Filter) -> None:
    """Put ``log_filter`` on every handler configured now (Prefect's console and API
    handlers included): a logger's own filters would miss its children's records."""
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if log_filter not in handler.filters:
                handler.addFilter(log_filter)


def install_log_masking() -> None:
    """Mask what reaches the terminal and the server through any configured handler."""
    add_handler_filter(_FILTER)
