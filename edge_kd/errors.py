"""Exceptions that map to the CLI's exit codes.

Exit codes everywhere: 0 success, 1 a budget or gate check failed, 2 bad input or usage.
Library code raises these; only the CLI turns them into exit codes and one-line messages.
"""
from __future__ import annotations


class EdgeKDError(Exception):
    """Base class of every error edge_kd raises on purpose. Exit code 2 (bad input)."""

    exit_code = 2


class InputError(EdgeKDError):
    """Bad input from the user: a file, a profile, a recipe, a model, data. Exit code 2."""


class ConfigError(InputError):
    """A config file (profile, recipe) is invalid. The message names the file and the key."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None):
        self.source = source
        self.key = key
        prefix = ""
        if source:
            prefix += f"{source}: "
        if key:
            prefix += f"'{key}': "
        super().__init__(prefix + message)


class BudgetError(EdgeKDError):
    """A budget or gate check failed. Exit code 1."""

    exit_code = 1
