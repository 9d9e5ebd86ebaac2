"""A sleeper through a night, and the bed sensor's signal they make (ballistocardiography).

The night (bed time, compressed by the sanctuary's time scale): the sleeper gets into bed,
falls asleep, cycles through light, deep and REM-like light sleep in ~90-minute cycles,
moves now and then (more when sleeping lightly), and gets up in the morning. Heart rate
(45-90 bpm) and breathing (10-20 /min) follow the stage with slow drift, and vary from
beat to beat and breath to breath, least in deep sleep. Physiology stays in real time
(the firmware samples it at 100 Hz); only the schedule of the night is compressed.

The BCG sample: a baseline with slow drift, the breathing wave, a J-wave shaped pulse per
heartbeat whose size breathing modulates, sensor noise, and large irregular swings while
the sleeper moves. An empty bed is not silent: the building and the frame hum a little.
"""

import math
import random
from dataclasses import dataclass

from soma_protocol.constants import ADC_MIDSCALE
from soma_protocol.enums import SleepState

AWAKE, LIGHT, DEEP = SleepState.awake.name, SleepState.light.name, SleepState.deep.name
STAGE_HEART_BPM = {AWAKE: 68.0, LIGHT: 58.0, DEEP: 51.0}
STAGE_BREATHS_PER_MIN = {AWAKE: 16.0, LIGHT: 14.0, DEEP: 12.5}
STAGE_MOVES_PER_HOUR = {AWAKE: 12.0, LIGHT: 4.0, DEEP: 0.5}
# Breath-to-breath and beat-to-beat variability (relative sd): deep sleep breathes like a
# metronome, light sleep and wakefulness less so.
STAGE_BREATH_JITTER = {AWAKE: 0.15, LIGHT: 0.10, DEEP: 0.03}
STAGE_BEAT_JITTER = {AWAKE: 0.045, LIGHT: 0.035, DEEP: 0.02}


@dataclass
class Vitals:
    """Ground truth at one instant, for tests and reports."""

    present: bool
    stage: str
    moving: bool
    heart_bpm: float
    breaths_per_min: float


class Sleeper:
    def __init__(
        self, seed: int | str, night_s: float = 8 * 3600.0, time_scale: float = 1.0, in_bed_at_s: float = 600.0
    ) -> None:
        self._rng = random.Random(f"sleeper/{seed}")
        rng = self._rng
        self.time_scale = time_scale
        self.in_at = in_bed_at_s
        self.out_at = night_s - rng.uniform(600, 1800)
        self._stages = self._plan_stages(night_s)
        self._heart_bias = rng.uniform(-6, 8)  # this person's resting rate
        self._breath_bias = rng.uniform(-1.5, 2.0)
        self._beat_amplitude = rng.uniform(900, 1500)  # ADC codes
        self._move_until = -1.0
        self._next_move_check = 0.0
        self._heart_phase = 0.0
        self._breath_phase = 0.0
        self._beat_jitter = 0.0
        self._breath_jitter = 0.0
        self._last_real_s: float | None = None
        self._drift = 0.0

    def _plan_stages(self, night_s: float) -> list[tuple[float, str]]:
        """(start, stage) in bed time: awake in bed, then ~90-minute sleep cycles."""
        rng = self._rng
        t = self.in_at
        plan = [(0.0, AWAKE), (t, AWAKE)]
        t += rng.uniform(600, 1500)  # falling asleep
        while t < night_s:
            cycle = rng.uniform(80, 100) * 60
            deep_share = max(0.05, 0.45 - 0.08 * (len(plan) // 4))  # less deep sleep towards morning
            parts = [(LIGHT, 0.3), (DEEP, deep_share), (LIGHT, 0.55 - deep_share), (LIGHT, 0.15)]
            for stage, share in parts:
                plan.append((t, stage))
                t += cycle * share
            if rng.random() < 0.3:
                plan.append((t, AWAKE))  # a brief awakening
                t += rng.uniform(60, 300)
        return plan

    def stage_at(self, bed_s: float) -> str:
        if not self.in_at <= bed_s < self.out_at:
            return AWAKE
        stage = AWAKE
        for start, name in self._stages:
            if start > bed_s:
                break
            stage = name
        return stage

    def vitals(self, real_s: float) -> Vitals:
        """Ground truth at real time `real_s`."""
        bed_s = real_s * self.time_scale
        present = self.in_at <= bed_s < self.out_at
        stage = self.stage_at(bed_s)
        heart = STAGE_HEART_BPM[stage] + self._heart_bias + 3.0 * math.sin(bed_s / 1700.0)
        breaths = STAGE_BREATHS_PER_MIN[stage] + self._breath_bias + 1.0 * math.sin(bed_s / 2300.0)
        return Vitals(present, stage, present and real_s < self._move_until, heart, breaths)

    def bcg_code(self, real_s: float) -> int:
        """The bed sensor's ADC code at real time `real_s` (called at about 100 Hz)."""
        rng = self._rng
        dt = 0.0 if self._last_real_s is None else max(0.0, real_s - self._last_real_s)
        self._last_real_s = real_s
        vitals = self.vitals(real_s)
        self._drift += rng.gauss(0.0, 2.0) - self._drift * 0.001
        noise = rng.gauss(0.0, 25.0)
        if not vitals.present:
            hum = 15.0 * math.sin(2 * math.pi * 50.0 * real_s)  # mains hum through the frame
            return _clamp(ADC_MIDSCALE + self._drift + hum + noise)
        self._maybe_move(real_s, vitals.stage)
        if real_s < self._move_until:
            return _clamp(ADC_MIDSCALE + self._drift + rng.gauss(0.0, 4000.0))
        self._breath_phase += dt * vitals.breaths_per_min / 60.0 * (1.0 + self._breath_jitter)
        if self._breath_phase >= 1.0:
            self._breath_phase -= 1.0
            self._breath_jitter = rng.gauss(0.0, STAGE_BREATH_JITTER[vitals.stage])
        self._heart_phase += dt * vitals.heart_bpm / 60.0 * (1.0 + self._beat_jitter)
        if self._heart_phase >= 1.0:
            self._heart_phase -= 1.0
            self._beat_jitter = rng.gauss(0.0, STAGE_BEAT_JITTER[vitals.stage])
        breathing = math.sin(2 * math.pi * self._breath_phase)
        beat = self._beat_amplitude * (1.0 + 0.25 * breathing) * _j_wave(self._heart_phase, vitals.heart_bpm)
        return _clamp(ADC_MIDSCALE + self._drift + 1800.0 * breathing + beat + noise)

    def _maybe_move(self, real_s: float, stage: str) -> None:
        # Moves come at the stage's rate per hour of bed time; each lasts 3-20 real seconds,
        # shorter on a night compressed more than 20 times (or the sleeper would never lie still).
        if real_s < self._next_move_check:
            return
        self._next_move_check = real_s + 1.0
        if self._rng.random() < STAGE_MOVES_PER_HOUR[stage] * self.time_scale / 3600.0:
            self._move_until = real_s + self._rng.uniform(3.0, 20.0) * min(1.0, 20.0 / self.time_scale)


def _j_wave(phase: float, heart_bpm: float) -> float:
    """One heartbeat's BCG complex (H, I, J, K, L waves) over a beat's phase 0..1."""
    t = phase * 60.0 / heart_bpm  # seconds since the beat
    return (
        -0.25 * _bump(t, 0.10, 0.018)
        - 0.45 * _bump(t, 0.16, 0.020)
        + 1.00 * _bump(t, 0.22, 0.022)
        - 0.60 * _bump(t, 0.28, 0.024)
        + 0.20 * _bump(t, 0.36, 0.030)
    )


def _bump(t: float, centre: float, width: float) -> float:
    return math.exp(-0.5 * ((t - centre) / width) ** 2)


def _clamp(value: float) -> int:
    return max(0, min(65535, int(value)))
