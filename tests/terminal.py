"""Run a command on a pseudo-terminal, as a user at a terminal runs it (what it prints there,
its live tables included), and read back the text a user would see: escape sequences
dropped, lines as printed."""

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time

# CSI sequences (colours, cursor moves, erasing), OSC sequences (titles, links), charset picks.
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def plain(text: str) -> str:
    """Terminal output as plain lines: escapes removed, \\r\\n and lone \\r as line ends."""
    return ESCAPES.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


def run_in_terminal(args, *, interrupt_after=None, timeout=60.0, env=None, cwd=None, columns=120, rows=60):
    """Run `args` with stdin, stdout and stderr on a new pseudo-terminal of columns x rows;
    send SIGINT (Ctrl-C) after `interrupt_after` seconds if given. Return (exit status,
    plain text). A command still running after `timeout` is killed and fails the test."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    environment = {**(env or os.environ), "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(rows)}
    process = subprocess.Popen(args, stdin=terminal, stdout=terminal, stderr=terminal, env=environment, cwd=cwd)
    os.close(terminal)
    started = time.monotonic()
    chunks = []
    interrupted = False
    try:
        while True:
            if interrupt_after is not None and not interrupted and time.monotonic() - started > interrupt_after:
                process.send_signal(signal.SIGINT)
                interrupted = True
            if time.monotonic() - started > timeout:
                process.kill()
                raise AssertionError(f"{args} still ran after {timeout:g} s")
            ready, _, _ = select.select([controller], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(controller, 65536)
            except OSError:  # EIO: every holder of the terminal has closed it
                data = b""
            if not data:
                break
            chunks.append(data)
        status = process.wait(timeout=10)
    finally:
        os.close(controller)
    return status, plain(b"".join(chunks).decode(errors="replace"))
