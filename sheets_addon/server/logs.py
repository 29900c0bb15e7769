"""Logging of the backend under a WSGI server that leaves logging unconfigured.

gunicorn and waitress configure only their own loggers, so without this the
INFO lines of the server (each run queued, started and ended, each webhook
event, each retry of an HTTP call) would reach no handler and be dropped.
``configure_logging`` behaves like a library: it sets the level of the
``sheets_addon`` and ``runtime`` loggers and adds a stderr handler to each only
when no handler up the logger tree would take their records. A logging setup
of the operator's (``--log-config`` and the like) is left to do its work.
"""

from __future__ import annotations

import logging
import sys

LOG_LEVEL_ENV = "SYNCPLAN_LOG_LEVEL"
LOGGER_NAMES = ("sheets_addon", "runtime")
LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def parse_level(text: str | None) -> int | None:
    """Return the logging level named by ``text``, or None when it is empty.

    Raises ``ValueError`` with a message naming the value and the choices.
    """
    if text is None or not text.strip():
        return None
    name = text.strip().upper()
    if name not in _LEVELS:
        raise ValueError(f"{LOG_LEVEL_ENV}={text!r} is not a valid log level;"
                         f" set it to one of {', '.join(_LEVELS)}")
    return logging.getLevelNamesMapping()[name]


def configure_logging(level: int | None = None) -> list[logging.Handler]:
    """Make the backend's log records reach stderr unless a handler takes them.

    ``level`` is set on each package logger. When it is None, a logger whose
    level is unset gets INFO, and one set by the operator keeps its level.
    Returns the handlers added, so none on a second call in one process.
    """
    added = []
    for name in LOGGER_NAMES:
        logger = logging.getLogger(name)
        if level is not None:
            logger.setLevel(level)
        elif logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
        if _has_handler_for(logger):
            continue
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(handler)
        added.append(handler)
    return added


def _has_handler_for(logger: logging.Logger) -> bool:
    """Return whether a handler of ``logger`` or an ancestor takes its records."""
    level = logger.getEffectiveLevel()
    current: logging.Logger | None = logger
    while current is not None:
        if any(handler.level <= level for handler in current.handlers):
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False
