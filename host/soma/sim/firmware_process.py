"""One virtual bed's firmware: the deployed firmware tree (.mpy from mpy-cross) in its own
flash directory, run by the MicroPython unix port with the `sim` board backend.

The sim board talks to the world over UDP on the loopback interface (schema: "Simulator
link"); this class owns the world's end of that link for one bed: it sends ADC codes and
keeps the latest outputs, watchdog state and radio frames the firmware sent. The console
is the process's stdin/stdout here (pipes), with a management client on top.
"""

import os
import select
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self, cast

from soma import paths
from soma.link.management import ManagementClient
from soma.station.firmware_build import compile_tree
from soma_protocol import codec


class FirmwareProcess:
    def __init__(
        self,
        flash_dir: str | os.PathLike[str],
        heap: str = "96K",
        serial: str = "5c0a00000001",
        drift_ppb: int = 0,
        offset_us: int = 0,
    ) -> None:
        self.flash_dir = Path(flash_dir)
        self.heap = heap
        self.serial = serial
        self.drift_ppb = drift_ppb
        self.offset_us = offset_us
        self.outputs: list[int] = [0] * 5
        self.watchdog: dict[str, int] = {"timeout_ms": 0, "feeds": 0, "held": 0}
        self.local_ticks_us = 0
        self.reset_requested = 0
        self.radio_out: list[bytes] = []
        self._sensor_seq = 0
        self._bed_address: tuple[str, int] | None = None
        self._world: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.client: ManagementClient | None = None

    def _started(self) -> tuple[subprocess.Popen[bytes], socket.socket]:
        """The process and the world's socket, once start() has made them."""
        assert self._process is not None and self._world is not None, "start() first"
        return self._process, self._world

    def deploy(self) -> None:
        """Install the current firmware tree (compiled) into the flash directory."""
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        compile_tree(self.flash_dir)
        shutil.copyfile(paths.firmware_dir() / "main.py", self.flash_dir / "main.py")

    def start(self) -> None:
        self._world = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._world.bind(("127.0.0.1", 0))
        self._world.setblocking(False)
        env = dict(
            os.environ,
            MICROPYPATH=str(self.flash_dir),
            SOMA_SIM_WORLD_PORT=str(self._world.getsockname()[1]),
            SOMA_SIM_SERIAL=self.serial,
            SOMA_SIM_DRIFT_PPB=str(self.drift_ppb),
            SOMA_SIM_OFFSET_US=str(self.offset_us),
        )
        self._process = subprocess.Popen(
            [paths.micropython(), "-X", f"heapsize={self.heap}", "main.py"],
            cwd=self.flash_dir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.set_blocking(_pipe(self._process.stdout).fileno(), False)
        self.client = ManagementClient(self._read_console, self._write_console)

    def _read_console(self, timeout: float) -> bytes:
        self.serve_world(timeout)
        process, _ = self._started()
        data = _pipe(process.stdout).read()
        if not data and process.poll() is not None:
            raise RuntimeError(f"firmware exited ({process.returncode}): {self.stderr_tail()}")
        return data or b""

    def _write_console(self, data: bytes) -> None:
        stdin = _pipe(self._started()[0].stdin)
        stdin.write(data)
        stdin.flush()

    def serve_world(self, timeout: float = 0.0) -> None:
        """Take the datagrams the firmware sent (waiting up to timeout for the first)."""
        process, world = self._started()
        ready, _, _ = select.select([world, _pipe(process.stdout)], [], [], timeout)
        while world in ready:
            try:
                data, self._bed_address = world.recvfrom(512)
            except BlockingIOError:
                break
            if data[:1] == bytes([codec.schema.SIM_KIND_ACTUATORS]):
                values = codec.decode("sim_actuators", data)
                self.outputs = values[1:6]
                self.watchdog = dict(zip(("timeout_ms", "feeds", "held"), values[6:9], strict=True))
                self.local_ticks_us = values[9]
                self.reset_requested = values[10]
            elif data[:1] == bytes([codec.schema.SIM_KIND_RADIO]):
                self.radio_out.append(cast(bytes, codec.decode("sim_radio", data)[1]))  # the frame, not its send time

    def send_sensors(self, adc_codes: Sequence[int]) -> None:
        """Give the firmware its next ADC codes (six channels)."""
        if self._bed_address is None:
            return  # the firmware has not spoken yet: it sends its outputs first
        self._sensor_seq = (self._sensor_seq + 1) & 0xFFFFFFFF
        self._started()[1].sendto(codec.encode("sim_sensors", [self._sensor_seq, *adc_codes]), self._bed_address)

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stderr_tail(self) -> str:
        process, _ = self._started()
        if process.poll() is None:
            return ""
        return _pipe(process.stderr).read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        for stream in (self._process.stdin, self._process.stdout, self._process.stderr) if self._process else ():
            _pipe(stream).close()
        if self._world is not None:
            self._world.close()

    def __enter__(self) -> Self:
        self.deploy()
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
    """One of the process's streams: all three are pipes (subprocess.PIPE)."""
    assert stream is not None, "started with PIPE"
    return stream
