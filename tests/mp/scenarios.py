"""Firmware scenarios run under MicroPython on the scripted board with the pad plant.

Each function runs one story in virtual time and prints a JSON report for pytest to judge
(tests/test_firmware.py). Times are virtual seconds.
"""

import bed_harness as h

import records
import safety
import wire_codec as wire
from config import Config

NAMES = safety.FAULT_NAMES
MS = 1000


def _bit(name):
    return 1 << NAMES.index(name)


def _latched_names(bed):
    return [name for code, name in enumerate(NAMES) if bed.supervisor.latched & (1 << code)]


def _fault_events(board):
    """(code, active) of every fault event frame written so far (consumes the console output)."""
    return [(values[0], values[1]) for kind, _, msg, values in h.replies(board) if msg == wire.MESSAGE_ID_FAULT_EVENT]


def _make(config=None, **plant_options):
    if config:
        from storage import FlashStorage

        records.RecordStore(FlashStorage("")).save(wire.RECORD_KIND_CONFIG, Config(config).values())
    return h.make(**plant_options)


class Watch:
    """Records the first virtual time a condition holds."""

    def __init__(self, condition):
        self.condition = condition
        self.at = None

    def __call__(self, now_us):
        if self.at is None and self.condition():
            self.at = now_us / 1e6


def boot():
    board, plant, bed = _make(start_c=25.0)
    bed.targets_mc[0] = bed.targets_mc[1] = 33 * MS
    armed = Watch(lambda: bed.supervisor.armed)
    drive = Watch(lambda: board.outputs.levels[0] != 0)
    h.run(board, plant, bed, 2, lambda now: (armed(now), drive(now)))
    h.report(armed_at=armed.at, first_drive_at=drive.at, latched=_latched_names(bed))


def boot_with_open_sensor():
    board, plant, bed = _make(start_c=25.0)
    plant.inject("open", 0)
    plant.update(0)
    bed.targets_mc[0] = bed.targets_mc[1] = 33 * MS
    h.run(board, plant, bed, 30)
    passed, failed = bed._self_test([])
    h.report(
        armed=bed.supervisor.armed,
        latched=_latched_names(bed),
        max_drive=max(board.outputs.peak[0], board.outputs.peak[1]),
        failed_mask=failed,
    )


def overtemp():
    board, plant, bed = _make(start_c=30.0)
    bed.targets_mc[0] = bed.targets_mc[1] = 30 * MS
    h.run(board, plant, bed, 120)  # settled
    plant.inject("stuck", 0)  # zone 0's H-bridge conducts whatever the firmware says
    reading = Watch(lambda: max(bed.sensors.temps_mc[0], bed.sensors.temps_mc[1]) >= 42 * MS)
    off = Watch(lambda: reading.at is not None and board.outputs.levels[0] == 0 and board.outputs.levels[1] == 0)
    h.run(board, plant, bed, 900, lambda now: (reading(now), off(now)))
    latched_hot = _latched_names(bed)
    h.request(board, 7, wire.MESSAGE_ID_FAULT_CLEAR, [_bit("overtemp")])
    h.run(board, plant, bed, 0.1)
    refused = [v for k, s, m, v in h.replies(board) if s == 7]
    plant.heal("stuck", 0)
    h.run(board, plant, bed, 3600)  # cools: drive stays off while latched
    drive_while_latched = max(abs(board.outputs.levels[0]), abs(board.outputs.levels[1]))
    h.request(board, 8, wire.MESSAGE_ID_FAULT_CLEAR, [_bit("overtemp")])
    h.run(board, plant, bed, 30)
    frames = h.replies(board)
    cleared = [v for k, s, m, v in frames if s == 8]
    h.report(
        reading_at=reading.at,
        off_at=off.at,
        latched=latched_hot,
        refused=refused,
        cleared=cleared,
        drive_while_latched=drive_while_latched,
        after_clear=_latched_names(bed),
        drive_after_clear=board.outputs.levels[0],
        pad_c=plant.sensor_c[0],
    )


def sensor_fault(kind, sensor):
    board, plant, bed = _make(start_c=25.0)
    bed.targets_mc[0] = bed.targets_mc[1] = 35 * MS
    h.run(board, plant, bed, 20)
    driving = (board.outputs.levels[0], board.outputs.levels[1])
    injected = 20.0
    plant.inject(kind, sensor)
    off = Watch(lambda: board.outputs.levels[sensor] == 0 if sensor < 2 else bed.supervisor.latched)
    h.run(board, plant, bed, 5, off)
    events = _fault_events(board)
    h.report(
        driving=driving,
        zone_off_after=None if off.at is None else off.at - injected,
        other_zone=board.outputs.levels[1 - sensor] if sensor < 2 else None,
        latched=_latched_names(bed),
        events=events,
    )


def runaway(kind, config=None, target_c=35.0, start_c=25.0, settle_s=0, seconds=1200):
    """Inject `kind` on zone 0 (after settling, if asked); report when zone 0's drive went off."""
    board, plant, bed = _make(config, start_c=start_c)
    bed.targets_mc[0] = bed.targets_mc[1] = int(target_c * MS)
    if settle_s:
        h.run(board, plant, bed, settle_s)
    injected = settle_s
    plant.inject(kind, 0)
    off = Watch(lambda: bool(bed.supervisor.latched))
    h.run(board, plant, bed, seconds, off)
    h.report(
        detected_after=None if off.at is None else off.at - injected,
        latched=_latched_names(bed),
        zone0=board.outputs.levels[0],
        zone1=board.outputs.levels[1],
        max_pad_c=plant.max_pad_c,
    )


def deadman():
    board, plant, bed = _make(start_c=25.0)
    bed.targets_mc[0] = bed.targets_mc[1] = 35 * MS
    h.run(board, plant, bed, 10)
    driving = board.outputs.levels[0]
    bed._control = lambda count: None  # the control task stops refreshing the drive
    off = Watch(lambda: board.outputs.levels[0] == 0 and board.outputs.levels[1] == 0)
    h.run(board, plant, bed, 10, off)
    h.report(driving=driving, off_after=None if off.at is None else off.at - 10, latched=_latched_names(bed))


def watchdog():
    board, plant, bed = _make(start_c=25.0)
    gaps = []
    last = [0]

    def track(now_us):
        if board.watchdog.last_feed_us > last[0]:
            gaps.append(board.watchdog.last_feed_us - last[0])
            last[0] = board.watchdog.last_feed_us

    h.run(board, plant, bed, 30, track)
    healthy_gap_max = max(gaps[1:])
    bed.sensors.sample = lambda: False  # readings stop: the supervisor no longer runs
    stalled_at = board.clock.now_us
    h.run(board, plant, bed, 5)
    h.report(
        timeout_ms=board.watchdog.timeout_ms,
        healthy_gap_max_ms=healthy_gap_max / 1000,
        fed_after_stall_ms=(board.watchdog.last_feed_us - stalled_at) / 1000,
        stall_s=(board.clock.now_us - board.watchdog.last_feed_us) / 1e6,
    )


def auto_off():
    board, plant, bed = _make({"auto_off_min": 1}, start_c=25.0)
    h.request(board, 1, wire.MESSAGE_ID_SET_TARGETS, [36 * MS, 36 * MS])
    off = Watch(lambda: bed.supervisor.latched & _bit("auto_off"))
    h.run(board, plant, bed, 90, off)
    heating_when_off = board.outputs.levels[0]
    h.request(board, 2, wire.MESSAGE_ID_SET_TARGETS, [36 * MS, 36 * MS])  # the host refreshes
    h.run(board, plant, bed, 5)
    h.report(off_at=off.at, drive_when_off=heating_when_off, drive_after_refresh=board.outputs.levels[0])


def crash():
    board, plant, bed = _make(start_c=25.0)
    bed.targets_mc[0] = bed.targets_mc[1] = 35 * MS
    h.run(board, plant, bed, 5)
    driving = board.outputs.levels[0]
    calls = board.outputs.all_off_calls

    def broken(count):
        raise RuntimeError("a bug in a task")

    bed.tick = broken
    try:
        bed_module_main(board, bed)
        raised = None
    except RuntimeError as exc:
        raised = str(exc)
    h.report(
        driving=driving, raised=raised, levels=board.outputs.levels, all_off_calls=board.outputs.all_off_calls - calls
    )


def bed_module_main(board, bed):
    """bed.main's top-level handler around an existing Bed (the loop raises)."""
    import bed as bed_module

    original = bed_module.Bed
    bed_module.Bed = lambda b: bed
    try:
        bed_module.main(board)
    finally:
        bed_module.Bed = original


def pid_step(kp=None, ki=None, kd=None):
    config = {}
    if kp is not None:
        config = {"zone_left.kp_q16": kp, "zone_left.ki_q16": ki, "zone_left.kd_q16": kd}
    board, plant, bed = _make(config, start_c=28.0)
    bed.targets_mc[0] = bed.targets_mc[1] = 28 * MS
    h.run(board, plant, bed, 1800)
    bed.targets_mc[0] = 32 * MS
    # peak reading, then over the last 20 minutes (settled): largest and summed |error|, count
    stats = [0, 0, 0, 0]

    def track(now_us):
        reading = bed.sensors.temps_mc[0]
        stats[0] = max(stats[0], reading)
        if now_us >= (1800 + 2400) * 1_000_000:
            error = abs(reading - 32 * MS)
            stats[1] = max(stats[1], error)
            stats[2] += error
            stats[3] += 1

    h.run(board, plant, bed, 3600, track)
    h.report(
        overshoot_c=(stats[0] - 32 * MS) / 1000,
        steady_error_max_c=stats[1] / 1000,
        steady_error_mean_c=stats[2] / stats[3] / 1000,
        pad_c=plant.pad_c[0],
        latched=_latched_names(bed),
    )


def night(hours=8):
    """A whole night: program-like set point changes, a sleeper in and out; nothing may trip."""
    board, plant, bed = _make(start_c=22.0, sleeper=False)
    schedule = [(0, 33), (1800, 29), (3 * 3600, 30), (hours * 3600 - 1800, 34)]
    events = []
    state = {"next": 0, "refreshed": 0}

    def program(now_us):
        now = now_us / 1e6
        while state["next"] < len(schedule) and now >= schedule[state["next"]][0]:
            target = schedule[state["next"]][1] * MS
            h.request(board, state["next"] + 1, wire.MESSAGE_ID_SET_TARGETS, [target, target])
            state["next"] += 1
        plant.sleeper = 600 <= now < hours * 3600 - 300
        if now - state["refreshed"] >= 3600:  # the program refreshes the bed hourly
            bed.supervisor.refresh()
            state["refreshed"] = now
        if bed.supervisor.latched and not events:
            events.append((now, _latched_names(bed)))

    h.run(board, plant, bed, hours * 3600, program)
    h.report(
        first_fault=events,
        latched=_latched_names(bed),
        ticks=bed.scheduler.ticks,
        overruns=bed.scheduler.overruns,
        pad_c=plant.sensor_c,
        max_pad_c=plant.max_pad_c,
    )


def autotune():
    """Relay autotune of zone 0 at 32 degC, then a set point step with the gains it stored."""
    board, plant, bed = _make(start_c=30.0)
    h.run(board, plant, bed, 1)
    h.request(board, 1, wire.MESSAGE_ID_AUTOTUNE, [0, 32 * MS, 300])
    h.run(board, plant, bed, 3600)
    events = [v for k, s, m, v in h.replies(board) if m == wire.MESSAGE_ID_AUTOTUNE_EVENT]
    state, generation, stored = records.RecordStore(board.storage).load(wire.RECORD_KIND_CONFIG)
    peak = [0]
    bed.targets_mc[0] = 34 * MS

    def track(now_us):
        peak[0] = max(peak[0], bed.sensors.temps_mc[0])

    h.run(board, plant, bed, 3600, track)
    h.report(
        events=events,
        stored=stored[:3] if stored else None,
        overshoot_c=(peak[0] - 34 * MS) / 1000,
        final_error_c=(bed.sensors.temps_mc[0] - 34 * MS) / 1000,
        latched=_latched_names(bed),
    )


# A valid request for every message the firmware serves, and what the response must hold.
REQUESTS = [
    (wire.MESSAGE_ID_PING, [0xC0FFEE]),
    (wire.MESSAGE_ID_INFO, []),
    (wire.MESSAGE_ID_READ_SENSORS, []),
    (wire.MESSAGE_ID_CALIBRATION_READ, []),
    (
        wire.MESSAGE_ID_CALIBRATION_WRITE,
        [1.1292e-3, 2.341e-4, 8.77e-8, 12] * 3 + [-1200, 65536, 1_767_225_600, b"bench-1"],
    ),
    (wire.MESSAGE_ID_CALIBRATION_COMMIT, []),
    (wire.MESSAGE_ID_CONFIG_READ, []),
    (wire.MESSAGE_ID_CONFIG_WRITE, Config().values()),
    (wire.MESSAGE_ID_BENCH_OVERRIDE, [3, 500, 2000]),
    (wire.MESSAGE_ID_SELF_TEST, []),
    (wire.MESSAGE_ID_FAULT_CLEAR, [0xFFFFFFFF]),
    (wire.MESSAGE_ID_PROVISION_KEY, [7, 3, bytes(range(32))]),
    (wire.MESSAGE_ID_TELEMETRY_CONTROL, [100]),
    (wire.MESSAGE_ID_SET_TARGETS, [31000, 30000]),
    (wire.MESSAGE_ID_AUTOTUNE, [1, 25000, 200]),
    (wire.MESSAGE_ID_REBOOT, [500]),
]


def console():
    """Every request answered in order with its sequence number; malformed frames get error
    frames; control keeps running throughout."""
    from frame_link import encode_into, encoded_size_max

    board, plant, bed = _make(start_c=30.0)
    bed.targets_mc[0] = bed.targets_mc[1] = 31 * MS
    h.run(board, plant, bed, 5)
    h.replies(board)
    answers = []
    for seq, (msg, values) in enumerate(REQUESTS[:-1], 1):
        h.request(board, seq, msg, values)
        h.run(board, plant, bed, 0.05)
        answers.append([(kind, s, m) for kind, s, m, v in h.replies(board) if s == seq and kind != 3])
    # Malformed: a bad CRC, an unknown message id, a payload of the wrong size, a response sent as a request.
    body = bytearray(64)
    garbage = []
    for kind, msg, payload in ((1, 1, b"\x01\x02\x03\x04"), (1, 99, b""), (1, 1, b"\x01"), (2, 1, b"\x01\x00\x00\x00")):
        length = wire.pack(wire.FRAME, body, 0, [kind, 200 + len(garbage), msg, payload])
        if not garbage:
            body[length - 1] ^= 0xFF  # the CRC
        line = bytearray(encoded_size_max(length))
        board.console.incoming.extend(line[: encode_into(body, length, line)])
        garbage.append(msg)
    board.console.incoming.extend(b"\x7e\x00noise\x7e")
    drive_before = board.outputs.levels[0]
    h.run(board, plant, bed, 1)
    errors = [(s, v[0]) for kind, s, m, v in h.replies(board) if kind == wire.FRAME_KIND_ERROR]
    drive_after = board.outputs.levels[0]
    h.request(board, 99, REQUESTS[-1][0], REQUESTS[-1][1])
    rebooted = False
    try:
        h.run(board, plant, bed, 2)
    except Exception as exc:  # the scripted board's Reset
        rebooted = type(exc).__name__ == "Reset"
    h.report(
        answers=answers,
        errors=errors,
        drive_before=drive_before,
        drive_after=drive_after,
        outputs_at_reboot=board.outputs.levels,
        latched=_latched_names(bed),
        rebooted=rebooted,
        requests=bed.link.requests,
    )


def sample_path_allocation(ticks=2000):
    """Bytes allocated by the 100 Hz sample path (all ADC channels, filtering, conversion)."""
    import gc

    board, plant, bed = _make(start_c=30.0)
    sample = bed.sensors.sample
    for _ in range(20):
        sample()
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for _ in range(ticks):
        sample()
    allocated = gc.mem_alloc() - before
    gc.enable()
    h.report(allocated=allocated, ticks=ticks, temp=bed.sensors.temps_mc[0])
