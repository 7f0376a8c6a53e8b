"""Logging set-up: messages to the console and to ``<log_dir>/info.log``."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

LOGGER_NAME = "ce"
LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}


def setup_logging(log_dir: Path | None = None, verbosity: int = 1) -> logging.Logger:
    """The project logger: plain messages on stderr, timestamped lines in info.log.

    Calling it again replaces the handlers (one run per process at a time).
    """
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(LEVELS.get(verbosity, logging.DEBUG))
    logger.propagate = False
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(message)s"))
    console.setLevel(logging.INFO)
    logger.addHandler(console)
    if log_dir is not None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(Path(log_dir) / "info.log", encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s - %(levelname)s - %(message)s"))
        logger.addHandler(file_handler)
    return logger


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)
