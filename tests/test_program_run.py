"""What a bed does at each moment of a program (firmware/program.py, checked by
firmware/program_intake.py): phases in order, pads kept until a phase sets them (absolute, comfort
offset, off), the light ramping by perceived brightness from the level before, haptic
patterns, then the ushering from its onset. The same answers under MicroPython."""

import pytest

import program_intake
from mpexec import run_micropython
from program import Program
from soma.sanctuary import program as programs
from soma.sanctuary import program_wire

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core

S = 1_000_000
START = 50 * S
COMFORT = (30_000, 29_000, 1000, 600)
FILE = {
    "id": 3,
    "duration": "10m",
    "phase": [
        {"at": "0s", "pad": 34, "light": 50, "light_ramp": "20s"},
        {"at": "60s", "light": 0, "light_ramp": "10s", "haptic": "wave"},
        {"at": "120s", "pad_offset": -1.5},
        {"at": "180s", "pad": "off"},
    ],
    "ushering": {"at": "5m", "ramp": "40s", "light": 100, "pad_offset": 1.0, "haptic": "pulse"},
}


def compiled():
    return program_wire.compile_program(programs.from_data(FILE), 1, START)


def outputs(at_s, onset_s=0):
    program = Program(compiled())
    onset = START + onset_s * S if onset_s else 0
    return program.outputs(START + int(at_s * S), onset, COMFORT, [-1, -1, 0, 0])


def test_phases_set_the_pads_and_ramp_the_light():
    assert outputs(-1) == [-1, -1, 0, 0]  # before the start: nothing
    assert outputs(0) == [34_000, 34_000, 0, 0]
    assert outputs(10)[2] == 250 and outputs(20)[2] == outputs(59)[2] == 500
    # A phase without pads keeps the last ones; its light ramps down from where it was.
    assert outputs(65)[:3] == [34_000, 34_000, 250]
    assert outputs(125)[:2] == [28_500, 27_500]  # the comfort profile, each zone, -1.5 degC
    assert outputs(200)[:2] == [0, 0]


def test_haptic_patterns():
    wave = [outputs(60 + t / 10)[3] for t in range(0, 41)]  # one 4 s wave
    assert wave[0] == 0 and wave[20] == 1000 and wave[40] == 0
    assert all(0 <= level <= 1000 for level in wave)


def test_the_ushering_from_its_onset():
    assert outputs(290, onset_s=300) == outputs(290)  # not yet
    at_onset = outputs(300, onset_s=300)
    assert at_onset[:2] == [31_000, 30_000] and at_onset[2] == 0 and at_onset[3] == 1000  # pulse on
    assert outputs(320, onset_s=300)[2] == 500 and outputs(340.5, onset_s=300)[2] == 1000
    assert outputs(300.5, onset_s=300)[3] == 0  # the pulse's off part


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"duration_s": 0}, "no duration"),
        ({"smart_window_s": 400}, "ushering outside"),
        ({"ushering_pad_mode": 7}, "pad mode"),
        ({"ushering_light_permille": 1001}, "light or haptic"),
        ({"phases": b"\x00" * 13}, "whole phases"),
    ],
)
def test_the_bed_refuses_a_program_that_makes_no_sense(change, message):
    from soma_protocol import codec

    fields = codec.nest("program_data", compiled())
    fields.update(change)
    with pytest.raises(ValueError, match=message):
        program_intake.check(codec.values_of("program_data", fields))


def test_the_same_answers_under_micropython():
    moments = [(t, 0) for t in (0, 10, 65, 125, 200, 61.3)] + [(t, 300) for t in (300, 320, 300.5)]
    code = (
        "import json\nfrom program import Program\n"
        f"p = Program({compiled()!r})\n"
        f"def at(t, o):\n"
        f"    return p.outputs({START} + int(t * {S}), {START} + o * {S} if o else 0, {COMFORT!r}, [-1, -1, 0, 0])\n"
        f"print(json.dumps([at(t, o) for t, o in {moments!r}]))"
    )
    assert run_micropython(code) == [outputs(t, o) for t, o in moments]
