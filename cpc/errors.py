"""What the command line turns into one line instead of a traceback.

UserError: a mistake the user can fix (a bad path, config value, file or input); printed as
`cpc <command>: <message>`, exit status 2. Interrupted: a run stopped cleanly by Ctrl-C after saving its state; exit
status 130. Preempted: a run stopped cleanly by SIGTERM or SIGUSR1 (a scheduler ending, preempting or warning the
job) after saving its state; exit status 75 (EX_TEMPFAIL, "try again later": requeue the job with --resume).
Anything else is a bug and keeps its traceback."""

REQUEUE_EXIT_STATUS = 75  # sysexits.h EX_TEMPFAIL; unlike a failure (1), a user error (2) or Ctrl-C (130)


class UserError(Exception):
    """Something the user can fix; the message names it, where it is, and how to fix it."""


class Interrupted(Exception):
    """Ctrl-C (SIGINT) stopped the work cleanly; the message says what was saved and how to continue."""

    exit_status = 130


class Preempted(Interrupted):
    """SIGTERM or SIGUSR1 stopped training cleanly at a checkpoint; the exit status asks for a requeue."""

    exit_status = REQUEUE_EXIT_STATUS


class MissingExtra(UserError, ImportError):
    """An optional dependency that is not installed; the message names the extra that brings it."""


def require(module: str, extra: str, purpose: str):
    """`import module`, or MissingExtra: "<purpose> needs <module>: pip install 'cpc[<extra>]'"."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{purpose} needs {module}: pip install 'cpc[{extra}]' (or pip install {module})") from None
