"""structlog set-up: one JSON object per line on stdout (journald keeps it)."""

from __future__ import annotations

import logging
import sys

import structlog


def setup_logging(level: str) -> None:
    """Configure structlog JSON output at ``level`` (debug, info, warning, error)."""
    numeric = getattr(logging, level.upper())
    logging.basicConfig(level=numeric, stream=sys.stdout, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
