"""The safety oracle that referees every virtual bed: each of its rules sees a breach and lets
the legitimate case pass (in CPython, on explicit times); the line tap turns the host's
requests and the firmware's reports into what the oracle needs and survives any garbage; the
world feeds it boots, loop life, heat and programs; and a firmware build with its stuck-heater
rule and relay disabled fails a real virtual-bed run."""

import json
import shutil
import socket
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soma import paths
from soma.link.management import FAULT_CODES, KINDS, MESSAGES
from soma.sim.line_tap import LineTap
from soma.sim.safety_oracle import SafetyOracle
from soma.sim.sanctuary import Sanctuary, wait_for
from soma.sim.world import BedWorld, Unit, World, oracles_created
from soma.station.flashing import Image
from soma_protocol import codec, framing, schema
from soma_protocol.enums import OutputChannel
from strategies import values_for

cpu = pytest.mark.cpu  # the tests that measure no wall-clock time (the last ones run beds in real time)

TRIP_C = schema.TRIP_MAX_MC / 1000
AUTO_OFF_S = 60.0  # short, so that the rule can be watched without 12 h of observations
OVERTEMP = 1 << FAULT_CODES["overtemp"]
STEP_S = 0.01  # the world observes at 100 Hz


def oracle():
    return SafetyOracle("bed", TRIP_C, AUTO_OFF_S, schema.FAULT_MASK_ALL_DRIVE)


def watch(referee, start, end, pads=(30.0, 30.0), heat=(0.0, 0.0), enable=True, sound=(True, True, True)):
    """The world's observations from `start` to `end` (s), every STEP_S, of one unchanging truth;
    returns `end`."""
    for step in range(round((end - start) / STEP_S) + 1):
        referee.observe(start + step * STEP_S, list(pads), list(heat), enable, list(sound))
    return end


HEAT = (60.0, 0.0)  # the left pad heating


# ---- each rule: a breach is seen; the legitimate case is not one


@cpu
@pytest.mark.parametrize(("hot_s", "breach"), [(0.2, True), (0.05, False)])
def test_overtemp_heat_is_heat_at_the_trip_beyond_one_reading(hot_s, breach):
    referee = oracle()
    referee.loop_ran(0.0)
    t = watch(referee, 0.0, 1.0, heat=HEAT)
    t = watch(referee, t + STEP_S, t + hot_s, pads=(TRIP_C, 30.0), heat=HEAT)
    watch(referee, t + STEP_S, t + 1.0, pads=(TRIP_C + 1, 30.0))  # hot, but the heat is off
    assert referee.counts["overtemp_heat"] == int(breach)
    assert referee.breached == int(breach)
    assert referee.max_pad_c == TRIP_C + 1


@cpu
@pytest.mark.parametrize(
    ("heated_s", "heat", "breach"),
    [(0.7, HEAT, True), (0.4, HEAT, False), (2.0, (0.0, 60.0), False)],  # the last: only the sound zone heats
)
def test_sensor_heat_is_heat_on_a_zone_with_a_broken_thermistor_beyond_half_a_second(heated_s, heat, breach):
    referee = oracle()
    referee.loop_ran(0.0)
    t = watch(referee, 0.0, heated_s, heat=heat, sound=(False, True, True))
    watch(referee, t + STEP_S, t + 1.0, sound=(False, True, True))
    assert referee.counts["sensor_heat"] == int(breach)
    assert referee.breached == int(breach)


@cpu
@pytest.mark.parametrize(("heated_s", "breach"), [(0.7, True), (0.3, False)])
def test_heat_that_starts_on_a_zone_long_broken_gets_its_own_half_second(heated_s, breach):
    # A thermistor open for 2 s (the zone long off), then its H-bridge shorts: the firmware
    # can only see that heat once it flows.
    referee = oracle()
    referee.loop_ran(0.0)
    t = watch(referee, 0.0, 2.0, sound=(False, True, True))
    t = watch(referee, t + STEP_S, t + heated_s, heat=HEAT, sound=(False, True, True))
    watch(referee, t + STEP_S, t + 1.0, sound=(False, True, True))
    assert referee.counts["sensor_heat"] == int(breach)


@cpu
@pytest.mark.parametrize(("silent_s", "breach"), [(3.3, True), (3.0, False)])
def test_loop_heat_is_heat_after_the_loop_went_silent_for_3_1_s(silent_s, breach):
    referee = oracle()
    referee.loop_ran(0.0)
    watch(referee, 0.0, silent_s, heat=HEAT)
    assert referee.counts["loop_heat"] == int(breach)
    assert referee.breached == int(breach)


@cpu
def test_loop_heat_is_no_breach_while_the_loop_runs():
    referee = oracle()
    for tenth in range(100):  # ten seconds of heat, the loop showing life every 0.1 s
        referee.loop_ran(tenth / 10)
        watch(referee, tenth / 10, tenth / 10 + 0.09, heat=HEAT)
    assert referee.breached == 0 and referee.heat_s > 9


@cpu
@pytest.mark.parametrize(
    ("program", "breach"),
    [(None, True), ((0.0, AUTO_OFF_S), True), ((0.0, 2 * AUTO_OFF_S), False)],
)
def test_auto_off_heat_is_heat_past_auto_off_after_the_last_intent_or_program(program, breach):
    referee = oracle()
    referee.intent(0.0)
    if program is not None:
        referee.program(*program)
    for second in range(int(2 * AUTO_OFF_S) + 5):  # heat, the loop alive, no request since 0
        referee.loop_ran(second)
        watch(referee, second, second + 0.5, heat=HEAT)
    assert referee.counts["auto_off_heat"] == int(breach)
    assert referee.breached == int(breach)


@cpu
def test_auto_off_heat_is_no_breach_when_intents_keep_coming():
    referee = oracle()
    for second in range(int(3 * AUTO_OFF_S)):
        if second % 30 == 0:
            referee.intent(second)
        referee.loop_ran(second)
        watch(referee, second, second + 0.5, heat=HEAT)
    assert referee.breached == 0


@cpu
@pytest.mark.parametrize(
    ("heat_at_s", "sound", "breach"),
    [
        (0.1, (True, True, True), True),  # before three readings could pass the self-checks
        (0.5, (True, True, True), False),
        (1.0, (True, True, False), True),  # the ambient thermistor open: the checks cannot pass
    ],
)
def test_boot_heat_is_heat_before_the_self_checks_could_pass(heat_at_s, sound, breach):
    referee = oracle()
    referee.boot(0.0)
    t = watch(referee, 0.0, heat_at_s, sound=sound)
    watch(referee, t + STEP_S, t + 0.2, heat=HEAT, sound=sound)
    assert referee.counts["boot_heat"] == int(breach)
    assert referee.boots == 1


@cpu
@pytest.mark.parametrize(
    ("fault", "closed_s", "breach"),
    [("overtemp", 0.5, True), ("stuck_left", 0.5, True), ("overtemp", 0.2, False), ("sensor_left", 2.0, False)],
)
def test_enable_with_fault_is_the_relay_closed_with_an_all_drive_fault_reported(fault, closed_s, breach):
    referee = oracle()
    referee.loop_ran(0.0)
    referee.reported(0.0, 1 << FAULT_CODES[fault])
    t = watch(referee, 0.0, closed_s, enable=True)
    watch(referee, t + STEP_S, t + 1.0, enable=False)
    assert referee.counts["enable_with_fault"] == int(breach)
    assert referee.breached == int(breach)


@cpu
def test_a_boot_forgets_the_reported_faults_and_an_episode_counts_once():
    referee = oracle()
    referee.loop_ran(0.0)
    referee.reported(0.0, OVERTEMP)
    watch(referee, 0.0, 2.0, enable=True)  # one long episode
    assert referee.counts["enable_with_fault"] == 1
    referee.boot(3.0)
    watch(referee, 3.0, 4.0, enable=True)  # the new boot latched nothing
    assert referee.counts["enable_with_fault"] == 1
    summary = referee.summary()
    assert summary["breaches"] == 1 and summary["boots"] == 1
    ((at, rule, detail),) = summary["first"]
    assert at > 0.25 and rule == "enable_with_fault" and detail.startswith("bed: ")


@cpu
def test_a_new_peak_tracks_the_hottest_pad_afresh_and_judges_as_before():
    referee = oracle()
    watch(referee, 0.0, 1.0, pads=(TRIP_C, 20.0))
    referee.new_peak()
    watch(referee, 1.0, 2.0, pads=(31.0, 33.5))
    assert referee.max_pad_c == 33.5 and referee.breached == 0


# ---- the line tap


def line(kind, message, values, seq=1):
    """One management frame as it passes on the serial line."""
    kind_id, msg = KINDS[kind], MESSAGES[message]
    payload = codec.encode(codec.payload_name(kind_id, msg), values)
    return framing.encode(codec.encode("frame", [kind_id, seq, msg, payload]))


def telemetry(fault_mask=0, global_time_us=0):
    fields = [leaf.path for leaf in codec.MESSAGES["telemetry"].fields]
    values = [0] * len(fields)
    values[fields.index("fault_mask")] = fault_mask
    values[fields.index("global_time_us")] = global_time_us
    return line("telemetry", "telemetry", values)


def program(start_us, duration_s):
    fields = [leaf.path for leaf in codec.MESSAGES["program_data"].fields]
    values = [0] * len(fields)
    values[fields.index("start_us")] = start_us
    values[fields.index("duration_s")] = duration_s
    values[fields.index("phases")] = b""
    return values


DRIVE_LEFT, HAPTIC = int(OutputChannel.drive_left), int(OutputChannel.haptic)


@cpu
@pytest.mark.parametrize(
    ("message", "values", "intent"),
    [
        ("set_targets", [34_000, 0], True),
        ("set_targets", [0, 0], False),  # both zones off
        ("autotune", [0, 36_000, 500], True),
        ("program_upload", program(0, 600), True),
        ("bench_override", [DRIVE_LEFT, 500, 2000], True),
        ("bench_override", [DRIVE_LEFT, -500, 2000], False),  # cooling
        ("bench_override", [DRIVE_LEFT, 500, 0], False),  # releases the override
        ("bench_override", [HAPTIC, 500, 2000], False),
        ("info", [], False),
        ("telemetry_control", [100], False),
        ("fault_clear", [0xFFFF], False),
    ],
)
def test_the_tap_hears_the_host_s_intents_to_heat_and_nothing_else(message, values, intent):
    tap = LineTap()
    tap.heard(line("request", message, values), from_bed=False, at=5.0)
    tap.heard(line("request", message, values), from_bed=True, at=6.0)  # the unit never asks: not a request
    assert list(tap.intents) == ([5.0] if intent else [])
    assert not tap.reports and not tap.programs


@cpu
def test_the_tap_follows_the_fault_mask_the_unit_reports():
    tap = LineTap()
    stuck = 1 << FAULT_CODES["stuck_left"]
    info = [b"0.1.0", bytes(8), 0, b"5c0a", 1, 0, 0, 0, OVERTEMP, 0, 0, 0, 0]
    for at, data in enumerate(
        [
            telemetry(fault_mask=OVERTEMP),
            line("event", "fault_event", [FAULT_CODES["stuck_left"], 1, 5000, 10]),
            line("event", "fault_event", [FAULT_CODES["overtemp"], 0, 0, 11]),
            line("response", "fault_clear", [OVERTEMP, stuck]),
            line("event", "boot_event", [2, 1]),
            line("response", "info", info),
        ]
    ):
        tap.heard(data, from_bed=True, at=float(at))
    expected = [(0.0, OVERTEMP), (1.0, OVERTEMP | stuck), (2.0, stuck), (3.0, stuck), (4.0, 0), (5.0, OVERTEMP)]
    assert list(tap.reports) == expected
    assert not tap.intents


@cpu
@pytest.mark.parametrize("global_time", [True, False])
def test_an_accepted_program_runs_from_its_start_on_the_sanctuary_s_clock(global_time):
    tap = LineTap()
    if global_time:  # the unit's clock read 50 s at host time 100
        tap.heard(telemetry(global_time_us=50_000_000), from_bed=True, at=100.0)
    tap.heard(line("request", "program_upload", program(60_000_000, 600), seq=7), from_bed=False, at=103.0)
    tap.heard(line("request", "program_upload", program(60_000_000, 900), seq=8), from_bed=False, at=104.0)
    tap.heard(line("response", "program_upload", [1, 1], seq=7), from_bed=True, at=103.5)
    tap.heard(line("error", "program_upload", [4, 0], seq=8), from_bed=True, at=104.5)  # refused: it never runs
    start = 110.0 if global_time else 103.0  # without the clock: from when it was asked
    assert list(tap.programs) == [(start, start + 600)]
    assert list(tap.intents) == [103.0, 104.0]


@cpu
def test_the_tap_takes_frames_in_any_chunks_and_through_noise():
    tap = LineTap()
    data = b"MPY: soft reboot\r\n>>> " + line("request", "set_targets", [30_000, 30_000]) + b"\x7e\x7d\x7e"
    data += line("request", "set_targets", [31_000, 31_000])
    for index in range(len(data)):
        tap.heard(data[index : index + 1], from_bed=False, at=float(index))
    assert len(tap.intents) == 2


def any_frame():
    """Frames of every (kind, message) with valid payloads, and with payloads of another message."""
    pairs = [(kind, msg) for kind in KINDS.values() for msg in MESSAGES.values()]

    def build(pair, payload, seq):
        return framing.encode(codec.encode("frame", [pair[0], seq, pair[1], payload]))

    payloads = st.sampled_from(
        ["telemetry", "program_data", "bench_override", "fault_event", "info_response", "sanctuary_status"]
    ).flatmap(lambda name: values_for(name).map(lambda values: codec.encode(name, values)))
    return st.builds(build, st.sampled_from(pairs), st.one_of(payloads, st.binary(max_size=64)), st.integers(0, 65535))


@cpu
@settings(max_examples=1000)
@given(st.lists(st.one_of(any_frame(), st.binary(max_size=80)), max_size=6), st.booleans(), st.integers(1, 97))
def test_garbage_on_the_line_never_raises(pieces, from_bed, chunk):
    tap = LineTap()
    data = b"".join(pieces)
    for start in range(0, len(data), chunk):
        tap.heard(data[start : start + chunk], from_bed=from_bed, at=float(start))
    assert all(isinstance(at, float) for at in tap.intents)
    assert all(isinstance(mask, int) for _, mask in tap.reports)
    assert all(end >= start for start, end in tap.programs)


# ---- the world feeds it


def actuators(seq, drive_left=0, feeds=0, enable=0):
    return codec.encode("sim_actuators", [seq, drive_left, 0, 0, 0, 0, 2000, feeds, 0, 0, 0, enable])


@cpu
def test_oracles_created_collects_the_oracles_of_the_beds_made_inside_it():
    unit = Unit.from_seed(1, 0)
    with oracles_created() as outer:
        first = BedWorld(unit)
        with oracles_created() as inner:
            second = BedWorld(unit)
    for bed_world in (first, second):
        bed_world.close()
    assert outer == [first.oracle] and inner == [second.oracle]


@cpu
@pytest.mark.breach_expected  # the loop falls silent on purpose
def test_the_world_feeds_boots_loop_life_heat_and_the_relay_from_the_bed_s_datagrams():
    bed_world = BedWorld(Unit.from_seed(1, 0))
    first, second = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    address = ("127.0.0.1", bed_world.port)
    referee = bed_world.oracle
    try:
        t = 0.0

        def serve(datagram=None, sender=first, seconds=0.5):
            nonlocal t
            for _ in range(round(seconds / STEP_S)):
                if datagram is not None:
                    sender.sendto(datagram, address)
                bed_world.serve(t, STEP_S)
                t += STEP_S

        serve(actuators(1))  # the first datagram of a process: a boot
        assert referee.boots == 1 and referee.heat_s == 0
        for seq in range(2, 32):  # heat with the relay closed, the loop feeding its watchdog
            serve(actuators(seq, drive_left=500, feeds=seq, enable=1), seconds=0.1)
        assert referee.heat_s > 2.5 and referee.breached == 0
        serve(actuators(32, drive_left=500, feeds=32, enable=0), seconds=0.1)  # the relay opens: no heat
        heat_s = referee.heat_s
        serve(actuators(33, drive_left=500, feeds=33, enable=0))
        assert referee.heat_s == heat_s
        serve(actuators(5), sender=second)  # another process: another boot
        serve(actuators(1), sender=second)  # the same address counting from the start again: another
        assert referee.boots == 3 and referee.breached == 0
        serve(actuators(2, drive_left=500, feeds=7, enable=1), sender=second, seconds=4.0)  # the loop silent
        assert referee.counts["loop_heat"] == 1 and referee.breached == 1
    finally:
        first.close()
        second.close()
        bed_world.close()


def test_a_program_heard_on_one_bed_s_line_counts_for_every_bed_of_its_world():
    worlds = [World(), World()]  # the second one never hears of the program
    beds = [BedWorld(Unit.from_seed(1, index)) for index in range(4)]
    now = time.monotonic()
    for index, bed_world in enumerate(beds):
        # An oracle of its own, whose auto-off comes 1 s after the last intent (the world's: 12 h).
        bed_world.oracle = SafetyOracle("bed", TRIP_C, 1.0, schema.FAULT_MASK_ALL_DRIVE)
        bed_world.oracle.intent(now)
        bed_world.outputs[0] = 500  # every left pad heats
        bed_world.model.enable = True
        worlds[index // 3].add(bed_world, None)
    beds[0].tap.programs.append((now, now + 30))
    for world in worlds:
        world.start()
    try:
        time.sleep(2.0)
    finally:
        for world in worlds:
            world.stop()
    assert [bed_world.oracle.counts["auto_off_heat"] for bed_world in beds] == [0, 0, 0, 1]


@cpu
def test_a_bench_area_that_runs_virtual_beds_records_their_breaches(tmp_path, monkeypatch, capsys):
    import benchmarks

    monkeypatch.setattr(benchmarks, "RESULTS_DIR", tmp_path)

    def run():  # an area whose bed heats on with its loop silent
        bed_world = BedWorld(Unit.from_seed(1, 0))
        bed_world.close()
        bed_world.oracle.loop_ran(0.0)
        watch(bed_world.oracle, 0.0, 3.5, heat=HEAT)
        yield benchmarks.Result("area.figure", 1.0, "unit")

    assert benchmarks.record("area", run()) == 1
    told = capsys.readouterr()
    printed = [json.loads(line) for line in told.out.splitlines()]
    assert printed[-1] == {"name": "safety.breaches", "value": 1, "unit": "breaches"}
    assert (tmp_path / "area.jsonl").read_text().splitlines()[-1] == json.dumps(printed[-1])
    assert "safety breach: loop_heat" in told.err


# ---- a real virtual bed: the oracle fails a firmware that breaks the rules


def firmware_without_its_stuck_rule_and_relay(directory):
    """The firmware tree with two rules disabled: a stuck heater is never latched and the
    heater enable relay never opens once the self-checks pass."""
    tree = Path(directory)
    shutil.copytree(paths.firmware_dir(), tree)
    safety = tree / "safety.py"
    text = safety.read_text()
    for rule, disabled in (
        (
            "    def _latch(self, code, value):\n",
            "    def _latch(self, code, value):\n"
            "        if code == _FAULT_CODE_STUCK_LEFT or code == _FAULT_CODE_STUCK_RIGHT:\n"
            "            return\n",
        ),
        ("enable = self.armed and not self.latched & _FAULT_MASK_ALL_DRIVE", "enable = self.armed"),
    ):
        assert text.count(rule) == 1, f"safety.py changed: patch the test to disable {rule.strip()!r} again"
        text = text.replace(rule, disabled)
    safety.write_text(text)
    return Image.build(tree)


@pytest.mark.breach_expected
def test_the_oracle_fails_a_run_on_a_firmware_with_a_rule_disabled(tmp_path):
    image = firmware_without_its_stuck_rule_and_relay(tmp_path / "firmware")
    image.install(tmp_path / "beds" / "bed1")
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True, time_scale=100, sleepers=False) as sanctuary:
        bed = sanctuary.beds[0]
        bed.world.model.inject("bridge_short", 0)  # full heat on the left pad whenever the relay is closed
        assert wait_for(lambda: bed.world.model.fuse_blown[0], 60)  # only the hardware's last line stopped it
        time.sleep(0.5)
        (summary,) = sanctuary.safety()
    assert summary["counts"]["overtemp_heat"] >= 1  # heat on a pad past 42 degC
    assert summary["counts"]["enable_with_fault"] >= 1  # the relay closed with overtemp latched and reported
    assert sanctuary.breaches == summary["breaches"] >= 2
    assert summary["max_pad_c"] >= 48.0
    assert {rule for _, rule, _ in summary["first"]} >= {"overtemp_heat", "enable_with_fault"}
