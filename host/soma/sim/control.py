"""The running simulator's control socket: one JSON request per line, one JSON answer per
line, on a UNIX socket. `soma sim stop|fault|heal|reset|status` and tests use it.

Requests (beds count from 1): {"op": "status"} | {"op": "stop"}
| {"op": "reset", "bed": 1, "cause": "hard" | "power"}
| {"op": "fault" | "heal", "bed": 1, "kind": "open", "index": 0}
| {"op": "bath" | "fixture", "beds": [1], "inside": true}
| {"op": "partition", "groups": [[1, 2], [3]]}  (no groups: heal the partition)
| {"op": "power_cut", "bed": 1, "after_bytes": 40}  (the cut lands mid-write: the firmware's
  or `soma flash`'s, sim.power_cut)
| {"op": "stall", "bed": 1}  (the unit hangs; its watchdog resets it)
| {"op": "record", "bed": 1, "path": "/abs/night.csv", "seconds": 60}  (its raw BCG samples)
"""

import json
import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from soma.sim.pad_model import PadModel
from soma.sim.recorder import BcgRecorder
from soma.sim.virtual_bed import HARD, POWER_ON

if TYPE_CHECKING:
    from soma.sim.sanctuary import Sanctuary, SanctuaryDescription, SimBed

SENSOR_FAULTS = ("open", "short", "frozen")  # sensors 0..2
ZONE_FAULTS = ("disconnected", "bridge_short", "sense_open")  # zones 0..1
FAULT_KINDS = SENSOR_FAULTS + ZONE_FAULTS
RESET_CAUSES = {"hard": HARD, "power": POWER_ON}
# Where `soma sim` listens unless told otherwise (and where `soma ports` looks for its beds).
DEFAULT_CONTROL = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"soma-sim-{os.getuid()}.sock"


class ControlError(ValueError):
    """A control request the simulator cannot carry out."""


class Answer(TypedDict, total=False):
    """One answer on the control socket: "ok" (a message, or the status) or "error"."""

    ok: "str | SanctuaryDescription"
    error: str


class ControlServer:
    def __init__(self, sanctuary: "Sanctuary", path: str | os.PathLike[str]) -> None:
        self.sanctuary = sanctuary
        self.path = str(path)
        self.stopped = threading.Event()
        if os.path.exists(self.path):
            os.unlink(self.path)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.bind(self.path)
        self._socket.listen(4)
        self._socket.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, name="sim-control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.stopped.set()
        self._thread.join(timeout=2)
        self._socket.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            with connection, connection.makefile("rw") as stream:
                for line in stream:
                    stream.write(json.dumps(self.handle(line)) + "\n")
                    stream.flush()

    def handle(self, line: str | bytes) -> Answer:
        try:
            request = json.loads(line)
            op = request.get("op")
            if op == "status":
                return {"ok": self.sanctuary.describe()}
            if op == "stop":
                self.stopped.set()
                return {"ok": "stopping"}
            if op in ("bath", "fixture"):
                numbers = [self._number(n) for n in request.get("beds", [])]
                place = self.sanctuary.place_in_bath if op == "bath" else self.sanctuary.place_in_fixture
                place(*numbers, inside=bool(request.get("inside", True)))
                return {"ok": f"beds {numbers} {'in' if request.get('inside', True) else 'out of'} the {op}"}
            if op == "partition":
                groups = [[self._number(n) - 1 for n in group] for group in request.get("groups", [])]
                self.sanctuary.world.radio.partition(*groups)
                return {"ok": f"radio partition {request.get('groups', [])}"}
            bed = self._bed(request)
            if op == "stall":
                bed.line.freeze()
                return {"ok": f"bed {request['bed']} stalled"}
            if op == "power_cut":
                after = request.get("after_bytes")
                if not isinstance(after, int) or after < 0:
                    raise ControlError("after_bytes must be a whole number >= 0")
                bed.cut_power_after(after)
                return {"ok": f"bed {request['bed']}: power cut after {after} more flash bytes"}
            if op == "record":
                seconds, path = request.get("seconds"), request.get("path")
                if not isinstance(seconds, int | float) or not 0 < seconds <= 86_400:
                    raise ControlError("seconds must be more than 0 and at most 86400")
                if not isinstance(path, str) or not os.path.isabs(path):
                    raise ControlError("path must be an absolute file path")
                if bed.world.recorder is not None:
                    raise ControlError(f"bed {request['bed']} is already being recorded")
                try:
                    bed.world.recorder = BcgRecorder(path, seconds)
                except OSError as exc:
                    raise ControlError(f"cannot record to {path}: {exc.strerror or exc}") from None
                return {"ok": f"recording bed {request['bed']} for {seconds:g} s to {path}"}
            if op == "reset":
                cause = request.get("cause", "hard")
                if cause not in RESET_CAUSES:
                    raise ControlError(f"cause must be one of {sorted(RESET_CAUSES)}")
                bed.line.reset(RESET_CAUSES[cause])
                return {"ok": f"bed {request['bed']} reset ({cause})"}
            if op in ("fault", "heal"):
                kind, index = request.get("kind"), request.get("index")
                if kind not in FAULT_KINDS:
                    raise ControlError(f"kind must be one of {', '.join(FAULT_KINDS)}")
                if not isinstance(index, int) or not 0 <= index < (3 if kind in SENSOR_FAULTS else 2):
                    raise ControlError("index: sensor 0..2 (pad left, pad right, ambient) or zone 0..1")
                model: PadModel = bed.world.model
                (model.inject if op == "fault" else model.heal)(kind, index)
                return {"ok": f"bed {request['bed']}: {op} {kind} {index}"}
            raise ControlError(f"unknown op {op!r}")
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            return {"error": str(exc)}

    def _number(self, number: object) -> int:
        if not isinstance(number, int) or not 1 <= number <= len(self.sanctuary.beds):
            raise ControlError(f"bed must be 1..{len(self.sanctuary.beds)}")
        return number

    def _bed(self, request: dict[str, object]) -> "SimBed":
        return self.sanctuary.beds[self._number(request.get("bed")) - 1]


def call(path: str | os.PathLike[str], request: dict[str, object], timeout: float = 5.0) -> dict[str, Any]:
    """Send one request to a running simulator's control socket; return its answer (an
    Answer as JSON gives it back: its shape depends on the request, so it stays untyped)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        connection.connect(str(path))
        with connection.makefile("rw") as stream:
            stream.write(json.dumps(request) + "\n")
            stream.flush()
            return json.loads(stream.readline())
