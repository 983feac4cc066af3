"""Errors that are the user's to fix (bad config, data, weights, paths): exit code 2, no traceback."""


class UserError(Exception):
    """Bad input. The message is ready to print: what, where, and the fix."""


class ResumeRefused(UserError):
    """A resume refused at set-up (another config, other classes, a damaged last.pt): the run is left as it
    was, with nothing recorded, so nothing is notified either."""
