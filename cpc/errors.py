"""The one error type for mistakes a user can fix: a bad path, config value, file or input. The command line
prints its message as one line, `cpc <command>: <message>`, and exits with status 2; anything else is a bug and
keeps its traceback."""


class UserError(Exception):
    """Something the user can fix; the message names it, where it is, and how to fix it."""
