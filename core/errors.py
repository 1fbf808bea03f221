"""The one exception type colcomb raises for bad input: its message names the problem and the fix."""


class ColcombError(Exception):
    """Bad input or a failed check; the CLI prints the message and exits with status 2."""
