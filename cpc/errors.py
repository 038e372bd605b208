"""What the command line turns into one line instead of a traceback.

UserError: a mistake the user can fix (a bad path, config value, file or input); printed as
`cpc <command>: <message>`, exit status 2. Interrupted: a run stopped cleanly by Ctrl-C after saving its state; exit
status 130. Anything else is a bug and keeps its traceback."""


class UserError(Exception):
    """Something the user can fix; the message names it, where it is, and how to fix it."""


class Interrupted(Exception):
    """Ctrl-C (SIGINT) stopped the work cleanly; the message says what was saved and how to continue."""


class MissingExtra(UserError, ImportError):
    """An optional dependency that is not installed; the message names the extra that brings it."""


def require(module: str, extra: str, purpose: str):
    """`import module`, or MissingExtra: "<purpose> needs <module>: pip install 'cpc[<extra>]'"."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{purpose} needs {module}: pip install 'cpc[{extra}]' (or pip install {module})") from None
