"""The one error type for bad input found before compute is spent."""
from __future__ import annotations


class InputError(ValueError):
    """An input (file, release folder, setting) that cannot work, found at start-up.

    Contract: the message is one line that names the file or value and says how to fix it.
    ``train.py`` and ``python -m study`` print it as ``error: <message>`` and exit non-zero,
    without a traceback; nothing has been written by the time it is raised.
    """
