"""The error of bad input, shared by every part of the package."""


class CaseError(ValueError):
    """Bad input (case file, override, initial-condition file): one-line message (exit code 2)."""
