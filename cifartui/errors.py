"""Errors that are the user's to fix (bad config, data, weights, paths): exit code 2, no traceback."""


class UserError(Exception):
    """Bad input. The message is ready to print: what, where, and the fix."""
