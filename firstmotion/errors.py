"""Errors a command reports in one line, without a traceback (``firstmotion.cli``)."""

from __future__ import annotations


class InputError(ValueError):
    """An input named on the command line that cannot be used (a file of the wrong format, a
    value that does not parse): the message says which and why; the command exits with 2."""
