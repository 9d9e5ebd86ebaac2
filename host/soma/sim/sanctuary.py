"""A simulated sanctuary: N virtual beds (blank or flashed), each with its unit's
tolerances from one seed, served by one world, refereed by a safety oracle per bed
(`safety()`, `breaches`). The Python API behind `soma sim`.

    with Sanctuary(beds=2, root=tmp, flashed=True) as sanctuary:
        sanctuary.beds[0].port      # open it with pyserial or mpremote
"""

import tempfile
import time
from pathlib import Path

from .bath import CalibrationBath
from .radio import RadioMedium, RadioSettings
from .sleeper import Sleeper
from .virtual_bed import VirtualBed
from .world import BedWorld, Unit, World


def install_firmware(flash_dir, image=None):
    """A flashed unit's flash directory, as the factory programmer leaves it."""
    from ..flashing import Image

    (image or Image.build()).install(flash_dir)


class SimBed:
    """One bed of the sanctuary: its unit, its line (VirtualBed) and its world (BedWorld), whose
    safety oracle hears the line."""

    def __init__(self, unit, flash_dir, baud, time_scale, heap, sleeper, epoch_us, radio_latency_us):
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

    @property
    def port(self):
        return self.line.port

    def describe(self):
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
        beds=1,
        seed=1,
        root=None,
        flashed=False,
        baud=None,
        time_scale=1.0,
        heap="96K",
        radio=None,
        sleepers=True,
        in_bed_at_s=600.0,
    ):
        if beds < 1:
            raise ValueError("a sanctuary needs at least one bed")
        self._scratch = None if root else tempfile.TemporaryDirectory(prefix="soma-sim-")
        self.root = Path(root or self._scratch.name)
        self.seed = seed
        self.bath = CalibrationBath(serial=f"CB{seed:04d}", time_scale=time_scale, seed=seed)
        radio = radio or RadioSettings()
        self.world = World(radio=RadioMedium(radio, seed=seed), bath=self.bath)
        # Every unit's clock reads its offset at this instant of the host's monotonic clock
        # and runs at its drift: the world knows each unit's clock exactly.
        self.epoch_us = time.monotonic_ns() // 1000
        latency_us = round((radio.delay_s - radio.jitter_s) * 1e6)
        self.beds = []
        for index in range(beds):
            flash_dir = self.root / f"bed{index + 1}"
            if flashed and not (flash_dir / "main.py").exists():
                install_firmware(flash_dir)
            unit = Unit.from_seed(seed, index)
            sleeper = Sleeper(f"{seed}/{index}", time_scale=time_scale, in_bed_at_s=in_bed_at_s) if sleepers else None
            self.beds.append(SimBed(unit, flash_dir, baud, time_scale, heap, sleeper, self.epoch_us, latency_us))

    def start(self):
        for bed in self.beds:
            self.world.add(bed.world, bed.line)
            bed.line.start()
        self.bath.start()
        self.world.start()
        return self

    def stop(self):
        self.world.stop()
        self.bath.stop()
        for bed in self.beds:
            bed.line.stop()
        if self._scratch is not None:
            self._scratch.cleanup()

    def safety(self):
        """Each bed's safety oracle summary (SafetyOracle.summary): its verdict so far."""
        return [bed.world.oracle.summary() for bed in self.beds]

    @property
    def breaches(self):
        """Safety breaches the oracles saw on every bed so far (0: the run is safe)."""
        return sum(bed.world.oracle.breached for bed in self.beds)

    def set_time_scale(self, scale):
        """Run the pads' and the bath's physics `scale` times faster than the wall clock from
        now on (the firmware stays in real time); the sleepers keep theirs."""
        self.bath.time_scale = scale
        for bed in self.beds:
            bed.world.time_scale = scale

    def place_in_bath(self, *numbers, inside=True):
        """Put beds (numbered from 1) into the calibration bath, or take them out."""
        for number in numbers:
            self.beds[number - 1].world.bath = self.bath if inside else None

    def place_in_fixture(self, *numbers, inside=True):
        """Put beds (numbered from 1) into the station's bench fixture (shield box with the
        reference radio, photodiode, accelerometer, shaker), or take them out; their pads
        stay on the bed, at room temperature."""
        for number in numbers:
            self.beds[number - 1].world.fixture = self.bath if inside else None

    def describe(self):
        return {
            "seed": self.seed,
            "root": str(self.root),
            "beds": [bed.describe() for bed in self.beds],
            "bath": {"port": self.bath.port, "serial": self.bath.serial},
            "radio": dict(self.world.radio.counts),
        }

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def wait_for(condition, timeout, interval=0.02):
    """Poll `condition` until it is true or `timeout` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def loop_report(bed, timeout=5.0):
    """One flashed bed's loop_stats (as a dict) and its process's resident memory (bytes)."""
    from ..serial_link import SerialLink

    with SerialLink(bed.port) as link:
        stats = link.management().request_fields("loop_stats", timeout=timeout)
    with open(f"/proc/{bed.line.pid}/status") as status:
        rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    stats["rss_bytes"] = rss_kb * 1024
    return stats
