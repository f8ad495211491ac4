"""Errors the drivers report to the supervisor (kept free of any transport library)."""


class WriteError(Exception):
    """A write failed or could not be confirmed; ``code`` is what a command result shows."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
