"""A simulated sanctuary: N virtual beds (blank or flashed), each with its unit's
tolerances from one seed, served by one world, refereed by a safety oracle per bed
(`safety()`, `breaches`). The Python API behind `soma sim`.

    with Sanctuary(beds=2, root=tmp, flashed=True) as sanctuary:
        sanctuary.beds[0].port      # open it with pyserial or mpremote
"""

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypedDict, TypeVar, cast

from soma.sim.bath import CalibrationBath
from soma.sim.power_cut import FlashWriteWatch
from soma.sim.radio import RadioMedium, RadioSettings
from soma.sim.sleeper import Sleeper
from soma.sim.virtual_bed import VirtualBed
from soma.sim.world import BedWorld, Unit, World

if TYPE_CHECKING:
    from soma.station.flashing import Image

T = TypeVar("T")


class BedDescription(TypedDict):
    port: str
    serial: str
    flash_dir: str
    blank: bool
    drift_ppb: int
    safety: dict[str, Any]  # SafetyOracle.summary (the oracle keeps to MicroPython's subset: untyped)


class BathDescription(TypedDict):
    port: str
    serial: str


class SanctuaryDescription(TypedDict):
    """`soma sim status`: the sanctuary as JSON."""

    seed: int
    root: str
    beds: list[BedDescription]
    bath: BathDescription
    radio: dict[str, int]  # the radio medium's counts


def install_firmware(flash_dir: str | os.PathLike[str], image: "Image | None" = None) -> None:
    """A flashed unit's flash directory, as the factory programmer leaves it."""
    from soma.station.flashing import Image

    (image or Image.build()).install(flash_dir)


class SimBed:
    """One bed of the sanctuary: its unit, its line (VirtualBed) and its world (BedWorld), whose
    safety oracle hears the line."""

    def __init__(
        self,
        unit: Unit,
        flash_dir: str | os.PathLike[str],
        baud: int | None,
        time_scale: float,
        heap: str,
        sleeper: Sleeper | None,
        epoch_us: int,
        radio_latency_us: int,
    ) -> None:
        self.unit = unit
        self.world = BedWorld(unit, time_scale=time_scale, sleeper=sleeper, epoch_us=epoch_us)
        self.line = VirtualBed(
            flash_dir,
            unit.serial,
            self.world.port,
            drift_ppb=unit.drift_ppb,
            offset_us=unit.offset_us,
            baud=baud,
            heap=heap,
            epoch_us=epoch_us,
            radio_latency_us=radio_latency_us,
            tap=self.world.tap,
        )
        self.power_cut: FlashWriteWatch | None = None

    @property
    def port(self) -> str:
        return self.line.port

    def cut_power_after(self, after_bytes: int) -> None:
        """Cut the unit's power once `after_bytes` more bytes have gone to its flash: the
        firmware's writes counted by the firmware (if it runs), anything else (`soma flash`'s
        receiver) by a FlashWriteWatch; whichever comes first, once."""
        try:
            self.world.cut_power_after(after_bytes)
        except RuntimeError:
            pass  # no firmware has run (a blank unit): only the watch counts
        if self.power_cut is not None:
            self.power_cut.stop()
        self.power_cut = FlashWriteWatch(self.line, after_bytes).start()

    def stop(self) -> None:
        if self.power_cut is not None:
            self.power_cut.stop()
        self.line.stop()

    def describe(self) -> BedDescription:
        return {
            "port": self.line.port,
            "serial": self.unit.serial,
            "flash_dir": self.line.flash_dir,
            "blank": self.line.blank,
            "drift_ppb": self.unit.drift_ppb,
            "safety": self.world.oracle.summary(),
        }


class Sanctuary:
    def __init__(
        self,
        beds: int = 1,
        seed: int = 1,
        root: str | os.PathLike[str] | None = None,
        flashed: bool = False,
        baud: int | None = None,
        time_scale: float = 1.0,
        heap: str = "96K",
        radio: RadioSettings | None = None,
        sleepers: bool = True,
        in_bed_at_s: float = 600.0,
        bath_time_scale: float | None = None,
    ) -> None:
        """`bath_time_scale`: the bath's own speed-up (default: `time_scale`); a unit in the
        bath takes the bath's temperature, so a fast bath calibrates in seconds while the
        pads' physics keep a pace the bench's heater steps measure."""
        if beds < 1:
            raise ValueError("a sanctuary needs at least one bed")
        self._scratch = None if root else tempfile.TemporaryDirectory(prefix="soma-sim-")
        self.root = Path(root or cast(tempfile.TemporaryDirectory[str], self._scratch).name)
        self.seed = seed
        bath_scale = time_scale if bath_time_scale is None else bath_time_scale
        self.bath = CalibrationBath(serial=f"CB{seed:04d}", time_scale=bath_scale, seed=seed)
        radio = radio or RadioSettings()
        self.world = World(radio=RadioMedium(radio, seed=seed), bath=self.bath)
        # Every unit's clock reads its offset at this instant of the host's monotonic clock
        # and runs at its drift: the world knows each unit's clock exactly.
        self.epoch_us = time.monotonic_ns() // 1000
        latency_us = round((radio.delay_s - radio.jitter_s) * 1e6)
        self.beds: list[SimBed] = []
        for index in range(beds):
            flash_dir = self.root / f"bed{index + 1}"
            if flashed and not (flash_dir / "main.py").exists():
                install_firmware(flash_dir)
            unit = Unit.from_seed(seed, index)
            sleeper = Sleeper(f"{seed}/{index}", time_scale=time_scale, in_bed_at_s=in_bed_at_s) if sleepers else None
            self.beds.append(SimBed(unit, flash_dir, baud, time_scale, heap, sleeper, self.epoch_us, latency_us))

    def start(self) -> Self:
        for bed in self.beds:
            self.world.add(bed.world, bed.line)
            bed.line.start()
        self.bath.start()
        self.world.start()
        return self

    def stop(self) -> None:
        self.world.stop()
        self.bath.stop()
        for bed in self.beds:
            bed.stop()
        if self._scratch is not None:
            self._scratch.cleanup()

    def safety(self) -> list[dict[str, Any]]:
        """Each bed's safety oracle summary (SafetyOracle.summary): its verdict so far."""
        return [bed.world.oracle.summary() for bed in self.beds]

    @property
    def breaches(self) -> int:
        """Safety breaches the oracles saw on every bed so far (0: the run is safe)."""
        return sum(bed.world.oracle.breached for bed in self.beds)

    def set_time_scale(self, scale: float) -> None:
        """Run the pads' and the bath's physics `scale` times faster than the wall clock from
        now on (the firmware stays in real time); the sleepers keep theirs."""
        self.bath.time_scale = scale
        for bed in self.beds:
            bed.world.time_scale = scale

    def place_in_bath(self, *numbers: int, inside: bool = True) -> None:
        """Put beds (numbered from 1) into the calibration bath, or take them out."""
        for number in numbers:
            self.beds[number - 1].world.bath = self.bath if inside else None

    def place_in_fixture(self, *numbers: int, inside: bool = True) -> None:
        """Put beds (numbered from 1) into the station's bench fixture (shield box with the
        reference radio, photodiode, accelerometer, shaker), or take them out; their pads
        stay on the bed, at room temperature."""
        for number in numbers:
            self.beds[number - 1].world.fixture = self.bath if inside else None

    def describe(self) -> SanctuaryDescription:
        return {
            "seed": self.seed,
            "root": str(self.root),
            "beds": [bed.describe() for bed in self.beds],
            "bath": {"port": self.bath.port, "serial": self.bath.serial},
            "radio": dict(self.world.radio.counts),
        }

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(condition: Callable[[], T], timeout: float, interval: float = 0.02) -> T:
    """Poll `condition` until it is true or `timeout` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def loop_report(bed: SimBed, timeout: float = 5.0) -> dict[str, int]:
    """One flashed bed's loop_stats (as a dict) and its process's resident memory (bytes)."""
    from soma.link.serial_link import SerialLink

    with SerialLink(bed.port) as link:
        stats = link.management().request_fields("loop_stats", timeout=timeout)
    with open(f"/proc/{bed.line.pid}/status") as status:
        rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    stats["rss_bytes"] = rss_kb * 1024
    return stats
