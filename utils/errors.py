"""Errors that describe bad input (a config, a store, a checkpoint) in one line.

Every error a user can fix derives from :class:`UserError`; the command lines print its
message and exit 2. Any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations


class UserError(ValueError):
    """Bad input, described in one line that names the file, key or value and what was expected."""


class ConfigError(UserError):
    """A config problem: ``<file>: <key path>: <what was expected>``."""


class StoreError(UserError):
    """A missing, stale or malformed feature store or released file, naming the file."""


class CheckpointError(UserError):
    """A missing or unreadable checkpoint, naming the file."""


class NonFiniteError(UserError):
    """A loss, weight or input array that is NaN or infinite, naming where it was found."""
