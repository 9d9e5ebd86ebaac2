"""Expected failures: one line to the user and an exit status, never a traceback."""


class SomaError(Exception):
    """A failure the user can act on. exit_code 2: usage/input/connection; 1: a unit failed."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def one_line(exc: BaseException) -> str:
    """An exception's message as one line (its first), or its type's name if it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
