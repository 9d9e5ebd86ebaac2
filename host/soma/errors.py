"""Expected failures: one line to the user that names the fix, and an exit status, never a
traceback.

Every expected failure has a cause in CAUSES (its one-line template and exit status), so
the same cause reads the same in every command. The parts below the commands either raise
`failure(cause, ...)` where they know the context (a port), or raise their own exception,
which EXCEPTIONS turns into its cause; `expected(exc)` does both, for `soma`'s entry point
(cli.LazyGroup.invoke) and for a command that reports per port (soma flash).

Exit status: 0 success, 1 a unit or check failed (or refused), 2 usage, input or
connection error, 3 an internal error (a bug: `--verbose` shows its traceback).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

EXIT_UNIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3

PORTS_HINT = "(`soma ports` lists them)"


@dataclass(frozen=True)
class Cause:
    template: str  # str.format fields, given by whoever raises it
    exit_code: int


CAUSES: dict[str, Cause] = {
    # The port itself.
    "no_such_port": Cause("{port}: no such port: is the unit plugged in? " + PORTS_HINT, EXIT_USAGE),
    "port_busy": Cause(
        "{port}: busy: another program holds it open (a terminal, mpremote, another soma): close it and try again",
        EXIT_USAGE,
    ),
    "port_permission": Cause(
        "{port}: permission denied: add your user to the port's group "
        "(`sudo usermod -aG dialout $USER`, then log in again)",
        EXIT_USAGE,
    ),
    "port_unusable": Cause("{port}: cannot open it ({reason}): is it a serial port? " + PORTS_HINT, EXIT_USAGE),
    # What answers on it.
    "no_answer": Cause(
        "{port}: nothing answers (no answer to {request} within {seconds:g} s): "
        "is this the unit's port, and is the unit powered? " + PORTS_HINT,
        EXIT_USAGE,
    ),
    "not_soma": Cause(
        "{port}: not a Soma unit: {device} answers: give the unit's port (were two ports swapped? "
        "`soma ports` lists them)",
        EXIT_USAGE,
    ),
    "no_repl": Cause(
        "{port}: no MicroPython REPL answers: is this the unit's port (a MicroPython board?) " + PORTS_HINT, EXIT_USAGE
    ),
    "firmware_stopped": Cause(
        "{port}: the Soma firmware is stopped at the REPL: it resumes by itself after 30 s idle; "
        "`soma flash --port {port}` or a reset restarts it now",
        EXIT_USAGE,
    ),
    "blank": Cause(
        "{port}: a blank MicroPython unit, no Soma firmware: install it with `soma flash --port {port}`", EXIT_USAGE
    ),
    "protocol_mismatch": Cause(
        "{port}: protocol hash mismatch: the unit speaks {theirs}, this soma {ours}: "
        "flash it with `soma flash --port {port}` (or use the soma that matches its firmware)",
        EXIT_USAGE,
    ),
    "stopped_answering": Cause(
        "{port}: the unit stopped answering ({detail}): is it still connected and powered?", EXIT_USAGE
    ),
    "unit_raised": Cause(
        "{port}: the unit raised {error} running the host's code: try again; if it repeats, reset the unit",
        EXIT_UNIT_FAILED,
    ),
    "line_failed": Cause("{port}: the line failed ({detail}): is the unit still connected?", EXIT_USAGE),
    # The unit's answers (error frames).
    "refused": Cause("{port}: the unit refused {request}: {reason}", EXIT_UNIT_FAILED),
    "unit_busy": Cause("{port}: the unit is too busy for {request} just now: try again", EXIT_UNIT_FAILED),
    "unit_storage": Cause("{port}: the unit could not write its flash storage ({request})", EXIT_UNIT_FAILED),
    "request_not_understood": Cause(
        "{port}: the unit cannot take {request} ({code}): check the values given, or update its firmware "
        "with `soma flash --port {port}`",
        EXIT_USAGE,
    ),
    # The calibration bath (the station's instrument) and the unit in it.
    "bath_no_answer": Cause(
        "{port}: the calibration bath does not answer {command} within {seconds:g} s: is this the bath's port, "
        "and is the bath on? " + PORTS_HINT,
        EXIT_USAGE,
    ),
    "bath_refused": Cause("{port}: the calibration bath refused {command}: {answer}", EXIT_USAGE),
    "not_in_bath": Cause(
        "{serial}: the unit is not in the bath (the shaker's reference is not seen on its bed sensor; "
        "the pads do not follow the bath): put it in and run again",
        EXIT_USAGE,
    ),
    # The host.
    "missing_driver": Cause("the {module} module is not installed (it is needed for {purpose}): {install}", EXIT_USAGE),
    "file": Cause("{filename}: {reason}", EXIT_USAGE),
    "internal": Cause("internal error: {kind}: {detail} (run with --verbose and report)", EXIT_INTERNAL),
}


class SomaError(Exception):
    """A failure the user can act on: its one-line message, exit status and cause (a CAUSES
    key, or "input" for a command's own check of its arguments and files)."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE, cause: str = "input") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.cause = cause


def failure(cause: str, **fields: Any) -> SomaError:
    """The SomaError of `cause`, its template filled with `fields`."""
    entry = CAUSES[cause]
    return SomaError(entry.template.format(**fields), entry.exit_code, cause)


def one_line(exc: BaseException) -> str:
    """An exception's message as one line (its first), or its type's name if it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# Optional modules a command may need only for some inputs: module -> (what for, how to install).
OPTIONAL_MODULES = {
    "psycopg": ("postgresql:// databases", "pip install 'psycopg[binary]' (or give a SQLite file)"),
    "psycopg2": ("postgresql:// databases", "pip install 'psycopg[binary]' and use postgresql+psycopg:// URLs"),
}
FILE_ERRORS = {
    "FileNotFoundError": "no such file or directory",
    "PermissionError": "permission denied",
    "IsADirectoryError": "a directory, not a file",
    "NotADirectoryError": "a path through a file, not a directory",
    "FileExistsError": "exists already",
}


def _from_management_timeout(exc: Any, port: str) -> SomaError:
    return failure("stopped_answering", port=port, detail=one_line(exc))


def _from_device_error(exc: Any, port: str) -> SomaError:
    fields = {"port": port, "request": exc.message, "code": exc.code}
    if exc.code == "refused":
        return failure("refused", reason=exc.reason, **fields)
    if exc.code == "busy":
        return failure("unit_busy", **fields)
    if exc.code == "storage":
        return failure("unit_storage", **fields)
    return failure("request_not_understood", **fields)


def _from_serial_exception(exc: Any, port: str) -> SomaError:
    return failure("line_failed", port=port, detail=one_line(exc))


def _from_import_error(exc: Any, port: str) -> SomaError | None:
    module = (exc.name or "").partition(".")[0]
    if module not in OPTIONAL_MODULES:
        return None  # a module soma itself needs: an installation problem, reported as internal
    purpose, install = OPTIONAL_MODULES[module]
    return failure("missing_driver", module=module, purpose=purpose, install=install)


def _from_os_error(exc: Any, port: str) -> SomaError | None:
    if not exc.filename:
        return None
    reason = FILE_ERRORS.get(type(exc).__name__) or exc.strerror or one_line(exc)
    return failure("file", filename=exc.filename, reason=reason)


# Exceptions of the parts below the commands, by class (module.qualname: this table
# imports none of them), and how each becomes its cause; the first class of an
# exception's MRO found here decides. A converter may answer None: not an expected failure.
EXCEPTIONS: dict[str, Callable[[Any, str], SomaError | None]] = {
    "soma.link.management.ManagementTimeout": _from_management_timeout,
    "soma.link.management.DeviceError": _from_device_error,
    "serial.serialutil.SerialException": _from_serial_exception,
    "builtins.ImportError": _from_import_error,
    "builtins.OSError": _from_os_error,
}


def expected(exc: BaseException, port: str = "the unit") -> SomaError | None:
    """`exc` as the SomaError of its cause (`port`: the line it happened on, if known), or
    None if it is not an expected failure (a bug)."""
    if isinstance(exc, SomaError):
        return exc
    for klass in type(exc).__mro__:
        convert = EXCEPTIONS.get(f"{klass.__module__}.{klass.__qualname__}")
        if convert is not None:
            return convert(exc, port)
    return None


def internal(exc: BaseException) -> SomaError:
    """A bug, as one line that asks for a report."""
    return failure("internal", kind=type(exc).__name__, detail=one_line(exc))
