"""Errors that carry a message meant for the person at the terminal.

The CLI turns an :class:`AsymmError` into one line on stderr and exit code 1; anything else that
escapes is a bug and is reported as such (still without a traceback unless ``ASYMM_DEBUG=1``).
"""


class AsymmError(Exception):
    """An operational failure the user can act on: a server down, a missing extension, bad data."""


class SandboxError(AsymmError):
    """The throwaway PostgreSQL/Redis sandbox could not be started, found or stopped."""


class UnsafeDirectoryError(SandboxError):
    """A state directory (or file in it) that someone else could have made or changed: refused, never used."""
