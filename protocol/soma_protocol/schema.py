"""The one Soma wire schema: every byte that leaves a bed is declared here, once.

Host code parses and builds with these `construct` objects directly; the firmware
cannot import `construct`, so `soma_protocol.codegen` walks this module and writes
`firmware/wire_codec.py` (struct-based) from it. The protocol hash that a unit reports
at connect is derived from this module too (`soma_protocol.ir.protocol_hash`).

Conventions, kept narrow on purpose so the generator can mirror them exactly:
- every integer is little-endian and fixed width; strings travel as length-prefixed
  bytes (`Prefixed(Int8ul, GreedyBytes)`), never as decoded text;
- a message whose integrity matters is wrapped in `Crc32Sealed`: the body followed by
  the CRC-32 of the body (`binascii.crc32` is C on CPython and on MicroPython);
- a top-level message must use up all of its bytes: trailing bytes are an error.
"""

import binascii
from collections.abc import Iterable
from typing import Any, cast

import construct as cs
from construct import (
    Adapter,
    Array,
    Bytes,
    Checksum,
    Const,
    Construct,
    Enum,
    FlagsEnum,
    FormatField,
    GreedyBytes,
    Prefixed,
    RawCopy,
    Struct,
    this,
)

# construct makes its integer fields with a @singleton decorator (each name is an instance),
# which pyright reads as the undecorated function: name their real type once here.
Float32l = cast(FormatField, cs.Float32l)
Int8ul = cast(FormatField, cs.Int8ul)
Int16sl = cast(FormatField, cs.Int16sl)
Int16ul = cast(FormatField, cs.Int16ul)
Int32sl = cast(FormatField, cs.Int32sl)
Int32ul = cast(FormatField, cs.Int32ul)
Int64ul = cast(FormatField, cs.Int64ul)

PROTOCOL_VERSION = 1


class Crc32Sealed(Adapter):
    """A body followed by the little-endian CRC-32 of the body's bytes."""

    def __init__(self, body: Construct) -> None:
        super().__init__(
            Struct(
                "body" / RawCopy(body),
                "crc" / Checksum(Int32ul, binascii.crc32, this.body.data),
            )
        )
        self.body = body

    # construct hands parsed Containers and build values through as dynamic objects.
    def _decode(self, obj: Any, context: Any, path: str) -> Any:
        return obj.body.value

    def _encode(self, obj: Any, context: Any, path: str) -> dict[str, Any]:
        return {"body": {"value": obj}, "crc": None}


def enum_value(node: Enum, name: str) -> int:
    """The value of one of an Enum's names. construct keys `encmapping` by EnumIntegerString,
    a str subclass that hashes and compares as its text, so a plain str finds it."""
    return int(cast(dict[str, int], node.encmapping)[name])


def _blob(length_field: Construct = Int8ul) -> Construct:
    """Length-prefixed raw bytes (names, versions, record payloads)."""
    return Prefixed(length_field, GreedyBytes)


# --------------------------------------------------------------------------
# Serial framing (USB console)
#
# Management frames share the USB serial line with the MicroPython REPL. A frame
# is FLAG, the escaped body, FLAG; escaping follows PPP's HDLC-like framing
# (RFC 1662) with an async control-character map covering every byte below 0x20:
# such a byte, FLAG or ESCAPE is sent as ESCAPE followed by (byte ^ 0x20). An
# encoded frame therefore contains no byte below 0x20 at all, so it can neither
# trigger the REPL (0x01 raw REPL, 0x02 friendly, 0x03 interrupt, 0x04 soft
# reset/execute, 0x05 paste) nor end a REPL line (CR/LF), and a Ctrl-C byte on
# the line is always the operator's. Raw control bytes inside a frame mark it
# as line noise; the receiver drops it and resynchronises at the next FLAG.
# --------------------------------------------------------------------------
FRAME_FLAG = 0x7E
FRAME_ESCAPE = 0x7D
FRAME_ESCAPE_XOR = 0x20
FRAME_CONTROL_LIMIT = 0x20  # bytes below this are always escaped
FRAME_BODY_MAX = 340  # unescaped body bytes, CRC included: the largest frame (calibration, 321) fits

FrameKind = Enum(
    Int8ul,
    request=1,
    response=2,
    telemetry=3,
    event=4,
    error=5,
)

# Management message ids. A request and its response share the id; telemetry and
# events have ids of their own.
MessageId = Enum(
    Int8ul,
    ping=1,
    info=2,
    read_sensors=3,
    calibration_read=4,
    calibration_write=5,
    calibration_commit=6,
    config_read=7,
    config_write=8,
    bench_override=9,
    self_test=10,
    fault_clear=11,
    provision_key=12,
    telemetry_control=13,
    reboot=14,
    repl_handback=15,
    set_targets=16,
    autotune=17,
    loop_stats=18,
    program_upload=19,
    sanctuary_status=20,
    telemetry=64,
    fault_event=65,
    boot_event=66,
    autotune_event=67,
)

ManagementFrame = Crc32Sealed(
    Struct(
        "version" / Const(PROTOCOL_VERSION, Int8ul),
        "kind" / FrameKind,
        "seq" / Int16ul,
        "msg" / MessageId,
        "payload" / Prefixed(Int16ul, GreedyBytes),
    )
)

# --------------------------------------------------------------------------
# Persistent records (calibration, configuration, comfort profile, key)
# --------------------------------------------------------------------------
RecordKind = Enum(
    Int8ul,
    calibration=1,
    config=2,
    comfort=3,
    key=4,
    program=5,
)

RECORD_MAGIC = b"SOMR"

Record = Crc32Sealed(
    Struct(
        "magic" / Const(RECORD_MAGIC),
        "kind" / RecordKind,
        "version" / Int8ul,
        "generation" / Int32ul,
        "payload" / Prefixed(Int16ul, GreedyBytes),
    )
)

ThermistorCalibration = Struct(
    # Steinhart-Hart: 1/T = a + b ln R + c (ln R)^3, T in kelvin, R in ohms.
    "a" / Float32l,
    "b" / Float32l,
    "c" / Float32l,
    "max_residual_mk" / Int16ul,
)

CalibrationData = Struct(
    "pad_left" / ThermistorCalibration,
    "pad_right" / ThermistorCalibration,
    "ambient" / ThermistorCalibration,
    "bcg_zero" / Int32sl,
    "bcg_gain_q16" / Int32ul,
    "calibrated_at" / Int32ul,
    "station" / _blob(),
)

ZoneGains = Struct(
    "kp_q16" / Int32sl,
    "ki_q16" / Int32sl,
    "kd_q16" / Int32sl,
)

ConfigData = Struct(
    "zone_left" / ZoneGains,
    "zone_right" / ZoneGains,
    "trip_mc" / Int32sl,
    "setpoint_min_mc" / Int32sl,
    "setpoint_max_mc" / Int32sl,
    "adc_open_above" / Int16ul,
    "adc_short_below" / Int16ul,
    "runaway_rise_mc" / Int16ul,
    "runaway_rise_window_s" / Int16ul,
    "runaway_band_mc" / Int16ul,
    "runaway_band_window_s" / Int16ul,
    "frozen_window_s" / Int16ul,
    "deadman_ms" / Int16ul,
    "auto_off_min" / Int16ul,
    "power_budget_w" / Int16ul,
)

# SPEC §3 limits, enforced by the firmware whoever writes to it and checked by the host
# before it sends: no configuration, program or calibration outside them is taken.
SETPOINT_MIN_MC = 13_000
SETPOINT_MAX_MC = 40_000
TRIP_MAX_MC = 42_000  # the hard trip: a configuration may lower it, never raise it
PAD_PHYSICAL_MIN_MC = -20_000  # a pad reading outside this range is a sensor fault, whatever
PAD_PHYSICAL_MAX_MC = 80_000  # the configuration's ADC window says
AUTO_OFF_MAX_MIN = 720  # heating goes off 12 h after the last intent to heat
PROGRAM_DURATION_MAX_S = 12 * 3600  # a longer program is refused (market practice)
# A calibration curve farther than this from the nominal thermistor anywhere between the
# two temperatures is refused: R25 +-5 % and B +-2 % is about +-1.5 K, so a sound unit passes.
CALIBRATION_DEVIATION_MAX_MK = 3_000
CALIBRATION_CHECK_LOW_MC = 10_000
CALIBRATION_CHECK_HIGH_MC = 45_000

ComfortData = Struct(
    "setpoint_left_mc" / Int32sl,
    "setpoint_right_mc" / Int32sl,
    "wake_light_max_permille" / Int16ul,
    "haptic_level_permille" / Int16ul,
)

KEY_LEN = 32

KeyData = Struct(
    "sanctuary_id" / Int16ul,
    "bed_id" / Int16ul,
    "key" / Bytes(KEY_LEN),
)

# --------------------------------------------------------------------------
# Programs: the night's phases on the sanctuary's global clock (record kind "program";
# uploaded to one bed, spread to the others in ProgramChunk radio frames)
# --------------------------------------------------------------------------
PROGRAM_PHASES_MAX = 16

# How a phase sets the pads: keep what the last phase set, off, an absolute set point,
# or an offset from the sleeper's comfort profile.
PadMode = Enum(Int8ul, keep=0, off=1, absolute=2, comfort_offset=3)

HapticPattern = Enum(Int8ul, off=0, pulse=1, wave=2)

ProgramPhase = Struct(
    "at_s" / Int32ul,  # from the program's start
    "pad_mode" / PadMode,
    "pad_mc" / Int32sl,  # set point (absolute) or offset (comfort_offset), millidegrees
    "light_permille" / Int16ul,  # perceived brightness reached at the end of the ramp
    "light_ramp_s" / Int16ul,
    "haptic" / HapticPattern,
)

ProgramData = Struct(
    "program_id" / Int16ul,
    "version" / Int16ul,  # the newest version (then the higher id) wins in the sanctuary
    "start_us" / Int64ul,  # global time
    "duration_s" / Int32ul,
    "budget_w" / Int16ul,  # Equal Rest budget of the sanctuary; 0: the configuration's
    "beds" / Int8ul,  # beds in the sanctuary: unheard ones are reserved at worst case
    # Wake-Dream Ushering: at wake_at_s, or earlier in the smart window before it.
    "wake_at_s" / Int32ul,
    "smart_window_s" / Int16ul,  # 0: exactly at wake_at_s
    "ushering_ramp_s" / Int16ul,
    "ushering_light_permille" / Int16ul,
    "ushering_pad_mode" / PadMode,
    "ushering_pad_mc" / Int32sl,
    "ushering_haptic" / HapticPattern,
    # ProgramPhase records back to back (at most PROGRAM_PHASES_MAX): bytes, so that a bed
    # reads one phase at a time instead of holding every value of every phase in its heap.
    "phases" / Prefixed(Int8ul, GreedyBytes),
)

RECORD_PAYLOADS = {
    "calibration": CalibrationData,
    "config": ConfigData,
    "comfort": ComfortData,
    "key": KeyData,
    "program": ProgramData,
}

# --------------------------------------------------------------------------
# Management payloads: (frame kind, message) -> payload struct
# --------------------------------------------------------------------------
Empty = Struct()

ResetCause = Enum(
    Int8ul,
    unknown=0,
    power_on=1,
    hard=2,
    watchdog=3,
    deep_sleep=4,
    soft=5,
    brownout=6,
)

CalibrationState = Enum(
    Int8ul,
    nominal=0,  # no record: nominal B-model coefficients in use
    calibrated=1,
    corrupt=2,  # record failed its check: nominal coefficients in use
    staged=3,  # a written record awaits commit
)

OUTPUT_CHANNELS = 5

OutputChannel = Enum(
    Int8ul,
    drive_left=0,
    drive_right=1,
    haptic=2,
    wake_light=3,
    status_led=4,
)

ErrorCode = Enum(
    Int8ul,
    bad_frame=1,
    unknown_message=2,
    bad_payload=3,
    refused=4,  # the safety supervisor or the unit's state says no
    busy=5,  # the unit cannot take it now (its heap is too full for the handler): ask again
    storage=6,
)

SENSOR_CHANNELS = 6  # pad left, pad right, ambient, current left, current right, BCG

PingPayload = Struct("nonce" / Int32ul)

# Which firmware runs (firmware/main.py, the boot loader): a development install at the
# flash root, a confirmed slot, a slot on trial after `soma flash`, or the previous slot
# after a trial slot failed to confirm.
BootState = Enum(Int8ul, development=0, confirmed=1, trial=2, rolled_back=3)

# Records missing or corrupt at boot (the unit runs on safe defaults instead).
RecordFlags = FlagsEnum(
    Int8ul,
    calibration_missing=1,
    calibration_corrupt=2,
    config_corrupt=4,
    comfort_corrupt=8,
    key_missing=16,
    key_corrupt=32,
    program_corrupt=64,
)

InfoResponse = Struct(
    "firmware_version" / _blob(),
    "firmware_hash" / Bytes(8),
    "protocol_hash" / Int32ul,
    "unit_serial" / _blob(),
    "reset_cause" / ResetCause,
    "uptime_ms" / Int32ul,
    "calibration_state" / CalibrationState,
    "record_flags" / RecordFlags,
    "fault_mask" / Int32ul,
    "sanctuary_id" / Int16ul,
    "bed_id" / Int16ul,
    "mpy_abi" / Int16ul,
    "boot_state" / BootState,
)

SensorReadings = Struct(
    "adc" / Array(SENSOR_CHANNELS, Int16ul),
    "pad_left_mc" / Int32sl,
    "pad_right_mc" / Int32sl,
    "ambient_mc" / Int32sl,
    "current_left_ma" / Int16ul,
    "current_right_ma" / Int16ul,
)

CalibrationReadResponse = Struct(
    "state" / CalibrationState,
    "generation" / Int32ul,
    "data" / CalibrationData,
)

GenerationPayload = Struct("generation" / Int32ul)

ConfigWriteResponse = Struct(
    "generation" / Int32ul,
    # 1: a limit changed, which the safety supervisor and sensors take at the next boot (the
    # record is stored; config_read returns it); gains apply at once either way
    "restart_needed" / Int8ul,
)

BenchOverride = Struct(
    "channel" / OutputChannel,
    "level_permille" / Int16sl,  # signed for thermal drive: -1000 cool .. +1000 heat
    "duration_ms" / Int32ul,  # 0 releases the override
)

# The boot self-checks (firmware/service.py): bits of the self_test response's masks.
SelfTest = FlagsEnum(
    Int32ul,
    sensor_left=1,  # pad thermistors and the ambient one inside their ADC window
    sensor_right=2,
    sensor_ambient=4,
    pad_plausible=8,  # both pads between 0 and 50 degC
    idle_current=16,  # no heater current with the drive off
)

SelfTestResponse = Struct(
    "passed_mask" / Int32ul,
    "failed_mask" / Int32ul,
)

FaultClearRequest = Struct("fault_mask" / Int32ul)

FaultClearResponse = Struct(
    "cleared_mask" / Int32ul,
    "remaining_mask" / Int32ul,
)

ProgramUploadResponse = Struct(
    "program_id" / Int16ul,
    "version" / Int16ul,
)

SanctuaryPeer = Struct(
    "bed_id" / Int16ul,
    "age_ms" / Int32ul,  # since its last accepted beacon
    "flags" / Int8ul,  # BeaconFlags bits
    "root_id" / Int16ul,
    "hops" / Int8ul,
    "occupancy" / Int8ul,  # Occupancy
    "wake_readiness" / Int8ul,  # WakeReadiness
    "program_version" / Int16ul,
    "demand_w" / Int16ul,
    "grant_w" / Int16ul,
)

SANCTUARY_PEERS_MAX = 16  # peers a bed keeps track of
NO_ROOT = 0xFFFF  # a root id that is no bed: none heard yet (bed id 0xFFFF is never given)
SANCTUARY_PAGE = 4  # peers per sanctuary_status response: small frames for a small heap

SanctuaryStatusRequest = Struct(
    "first_peer" / Int8ul,  # the page of peers wanted: from this index of the bed's table
)

# What one bed knows of its sanctuary: itself, then one page of the peers it has heard.
SanctuaryStatus = Struct(
    "bed_id" / Int16ul,
    "flags" / Int8ul,  # BeaconFlags bits
    "root_id" / Int16ul,
    "hops" / Int8ul,
    "skew_ppb" / Int32sl,
    "global_time_us" / Int64ul,
    "program_id" / Int16ul,
    "program_version" / Int16ul,
    "program_start_us" / Int64ul,
    "ushering_at_us" / Int64ul,  # 0: not decided yet
    "budget_w" / Int16ul,
    "demand_w" / Int16ul,
    "grant_w" / Int16ul,
    "peer_count" / Int8ul,  # peers known in all
    "first_peer" / Int8ul,
    "page_count" / Int8ul,  # peers in this page: the first page_count of `peers`
    "peers" / Array(SANCTUARY_PAGE, SanctuaryPeer),
)

KeyIdResponse = Struct("key_id" / Bytes(4))  # first bytes of SHA-256(key): never the key

TelemetryControl = Struct("period_ms" / Int16ul)  # 0 stops the stream

# reset: an orderly reset after the delay; watchdog: the loop hangs on purpose (outputs
# off) so that the watchdog must reset the unit: the bench's watchdog check.
RebootMethod = Enum(
    Int8ul,
    reset=0,
    watchdog=1,
)

RebootRequest = Struct(
    "delay_ms" / Int16ul,
    "method" / RebootMethod,
)

# Pad set points while no program runs (clamped to 13..40 degC by the firmware); 0 turns a zone off.
TargetsRequest = Struct(
    "left_mc" / Int32sl,
    "right_mc" / Int32sl,
)

# The sleeper, per 30 s epoch (firmware/sensing.py): in telemetry only, never on air.
SleepState = Enum(Int8ul, unknown=0, awake=1, light=2, deep=3)  # unknown: nobody in bed

VitalsValid = FlagsEnum(Int8ul, heart=1, breathing=2)  # which rates were confident and still

Telemetry = Struct(
    "uptime_ms" / Int32ul,
    "pad_left_mc" / Int32sl,
    "pad_right_mc" / Int32sl,
    "ambient_mc" / Int32sl,
    "setpoint_left_mc" / Int32sl,
    "setpoint_right_mc" / Int32sl,
    "drive_left_permille" / Int16sl,
    "drive_right_permille" / Int16sl,
    "current_left_ma" / Int16ul,
    "current_right_ma" / Int16ul,
    "outputs_permille" / Array(OUTPUT_CHANNELS, Int16sl),
    "fault_mask" / Int32ul,
    "tick_overruns" / Int32ul,
    "heap_used_bytes" / Int32ul,  # after the last idle-time collection
    "sync_flags" / Int8ul,  # BeaconFlags bits: synced, is_root, program_running, ushering
    "global_time_us" / Int64ul,  # this bed's estimate of the sanctuary's clock at...
    "local_ticks_us" / Int32ul,  # ...this reading of its own board clock (ticks_us)
    "sync_root_id" / Int16ul,  # the root it follows (0xFFFF: none heard yet)
    "sleep_epoch" / Int32ul,  # sensing epochs closed since boot; the fields below are the last one's
    "occupancy" / Int8ul,  # Occupancy
    "movement_s" / Int8ul,  # seconds of movement in the epoch (0..30)
    "breaths_per_min_x10" / Int16ul,  # 0 unless vitals_valid.breathing
    "heart_bpm_x10" / Int16ul,  # 0 unless vitals_valid.heart
    "vitals_valid" / VitalsValid,
    "sleep_state" / SleepState,
    "heater_enable" / Int8ul,  # 1: the supervisor holds the heater enable relay closed
)

# Safety supervisor faults (firmware/safety.py). Fault masks in info and telemetry have
# bit `1 << code` set for each latched fault.
FaultCode = Enum(
    Int8ul,
    overtemp=0,  # a pad sensor at or above the trip temperature (42 degC): all drive off
    sensor_left=1,  # pad thermistor open or short (ADC window): that zone off
    sensor_right=2,
    sensor_ambient=3,  # ambient thermistor open or short: reported
    no_rise_left=4,  # heating below target without the temperature rising
    no_rise_right=5,
    off_band_left=6,  # settled at target, then outside the band for too long
    off_band_right=7,
    frozen_left=8,  # identical readings while driving
    frozen_right=9,
    deadman=10,  # the drive not refreshed for 3 s: all drive off
    auto_off=11,  # 12 h without a program or host refresh: heating off
    self_test=12,  # boot self-checks failed: drive never armed
    stuck_left=13,  # heater current beyond the heat applied, or a pad rising while cooled: relay open
    stuck_right=14,
)
# Faults that cut every thermal drive and open the heater enable switch (SB-1 rev B): the
# switch is in series with both H-bridges, so a zone's stuck heater takes both zones.
ALL_DRIVE_FAULTS = ("overtemp", "deadman", "self_test", "stuck_left", "stuck_right")


def _fault_mask(names: Iterable[str]) -> int:
    return sum(1 << enum_value(FaultCode, name) for name in names)


FAULT_MASK_ALL_DRIVE = _fault_mask(ALL_DRIVE_FAULTS)
# Each zone's own faults: those named for its side.
FAULT_MASK_LEFT = _fault_mask(name for name in FaultCode.encmapping if name.endswith("_left"))
FAULT_MASK_RIGHT = _fault_mask(name for name in FaultCode.encmapping if name.endswith("_right"))

FaultEvent = Struct(
    "code" / FaultCode,
    "active" / Int8ul,
    "value" / Int32sl,
    "uptime_ms" / Int32ul,
)

BootEvent = Struct(
    "reset_cause" / ResetCause,
    "boot_epoch" / Int16ul,
)

# Relay autotune of one zone around a target; progress and the result come as autotune events.
AutotuneRequest = Struct(
    "zone" / Int8ul,
    "target_mc" / Int32sl,
    "amplitude_permille" / Int16ul,
)

AutotuneState = Enum(Int8ul, running=1, done=2, aborted=3)

AutotuneEvent = Struct(
    "zone" / Int8ul,
    "state" / AutotuneState,
    "peaks" / Int8ul,
    "kp_q16" / Int32sl,
    "ki_q16" / Int32sl,
    "kd_q16" / Int32sl,
)

# The 100 Hz loop's health since boot: what the firmware benchmarks and `soma monitor` read.
LoopStats = Struct(
    "ticks" / Int32ul,
    "overruns" / Int32ul,
    "body_p50_us" / Int16ul,
    "body_p99_us" / Int16ul,
    "body_max_us" / Int32ul,
    "late_p99_us" / Int16ul,
    "late_max_us" / Int32ul,
    "gc_runs" / Int32ul,
    "gc_pause_max_us" / Int32ul,
    "heap_used_bytes" / Int32ul,
    "heap_free_bytes" / Int32ul,
    "alloc_bytes_per_s" / Int32ul,  # allocated between idle-time collections
    "radio_accepted" / Int32ul,  # beacons accepted since boot
    "radio_rejected" / Int32ul,  # beacons malformed, foreign, unauthenticated or replayed
)

ErrorPayload = Struct(
    "code" / ErrorCode,
    "detail" / Int16ul,
)

MANAGEMENT_PAYLOADS = {
    ("request", "ping"): PingPayload,
    ("response", "ping"): PingPayload,
    ("request", "info"): Empty,
    ("response", "info"): InfoResponse,
    ("request", "read_sensors"): Empty,
    ("response", "read_sensors"): SensorReadings,
    ("request", "calibration_read"): Empty,
    ("response", "calibration_read"): CalibrationReadResponse,
    ("request", "calibration_write"): CalibrationData,
    ("response", "calibration_write"): Empty,
    ("request", "calibration_commit"): Empty,
    ("response", "calibration_commit"): GenerationPayload,
    ("request", "config_read"): Empty,
    ("response", "config_read"): ConfigData,
    ("request", "config_write"): ConfigData,
    ("response", "config_write"): ConfigWriteResponse,
    ("request", "bench_override"): BenchOverride,
    ("response", "bench_override"): Empty,
    ("request", "self_test"): Empty,
    ("response", "self_test"): SelfTestResponse,
    ("request", "fault_clear"): FaultClearRequest,
    ("response", "fault_clear"): FaultClearResponse,
    ("request", "provision_key"): KeyData,
    ("response", "provision_key"): KeyIdResponse,
    ("request", "telemetry_control"): TelemetryControl,
    ("response", "telemetry_control"): Empty,
    ("request", "reboot"): RebootRequest,
    ("response", "reboot"): Empty,
    ("request", "repl_handback"): Empty,
    ("response", "repl_handback"): Empty,
    ("request", "set_targets"): TargetsRequest,
    ("response", "set_targets"): Empty,
    ("request", "autotune"): AutotuneRequest,
    ("response", "autotune"): Empty,
    ("event", "autotune_event"): AutotuneEvent,
    ("request", "loop_stats"): Empty,
    ("response", "loop_stats"): LoopStats,
    ("request", "program_upload"): ProgramData,
    ("response", "program_upload"): ProgramUploadResponse,
    ("request", "sanctuary_status"): SanctuaryStatusRequest,
    ("response", "sanctuary_status"): SanctuaryStatus,
    ("telemetry", "telemetry"): Telemetry,
    ("event", "fault_event"): FaultEvent,
    ("event", "boot_event"): BootEvent,
}
# An error frame answers any request: its payload is the same for every message.
ERROR_PAYLOAD = ErrorPayload

# --------------------------------------------------------------------------
# Radio: the sync beacon (ESP-NOW broadcast)
# --------------------------------------------------------------------------
RADIO_BEACON = 0xB1
RADIO_PROGRAM_CHUNK = 0xB2
PROGRAM_CHUNK_DATA = 24
PROGRAM_CHUNKS_MAX = 12  # 288 bytes: the largest ProgramData (16 phases) fits
TAG_LEN = 8  # truncated HMAC-SHA256, as MAVLink 2 signing truncates to 48 bits
BEACON_AIR_MAX = 64

Occupancy = Enum(Int8ul, unknown=0, empty=1, occupied=2)

# Coarse sleep summary only: no raw vitals leave the bed (privacy).
WakeReadiness = Enum(Int8ul, unknown=0, awake=1, light=2, deep=3, moving=4)

# What a bed makes of a received radio frame. The checks run: shape and CRC, sanctuary, tag,
# then a frame that claims the receiver's own bed id (its own frame played back to it) is
# "own" before the replay guard sees it.
RadioVerdict = Enum(
    Int8ul,
    accepted=0,
    malformed=1,
    foreign=2,
    unauthenticated=3,
    replayed=4,
    own=5,
)

BeaconFlags = FlagsEnum(
    Int8ul,
    synced=1,
    is_root=2,
    program_running=4,
    ushering=8,
    fault=16,
)


def _radio_frame(kind: int, *fields: Construct) -> Construct:
    """A radio frame: its kind, the sender and its replay counter ((boot_epoch, seq) strictly
    increases per sender, over all its frames), `fields`, then the tag: HMAC-SHA256 (the
    sanctuary key, every byte before the tag), truncated; sealed by a CRC-32."""
    return Crc32Sealed(
        Struct(
            "radio_kind" / Const(kind, Int8ul),
            "version" / Const(PROTOCOL_VERSION, Int8ul),
            "sanctuary_id" / Int16ul,
            "bed_id" / Int16ul,
            "boot_epoch" / Int16ul,
            "seq" / Int32ul,
            *fields,
            "tag" / Bytes(TAG_LEN),
        )
    )


Beacon = _radio_frame(
    RADIO_BEACON,
    "flags" / BeaconFlags,
    "root_id" / Int16ul,
    "root_seq" / Int32ul,
    "global_time_us" / Int64ul,
    "program_id" / Int16ul,
    "program_version" / Int16ul,
    "program_start_us" / Int64ul,
    "occupancy" / Occupancy,
    "wake_readiness" / WakeReadiness,
    "power_demand_w" / Int16ul,
    "power_grant_w" / Int16ul,
    "drift_ppb" / Int32sl,
    "hops" / Int8ul,
)

# One piece of a program (its ProgramData record payload), so that it spreads by radio. The
# hash (first bytes of SHA-256 of the whole payload) tells the pieces of one upload from
# another's.
ProgramChunk = _radio_frame(
    RADIO_PROGRAM_CHUNK,
    "program_id" / Int16ul,
    "program_version" / Int16ul,
    "program_hash" / Bytes(4),
    "index" / Int8ul,
    "count" / Int8ul,
    "data" / Prefixed(Int8ul, GreedyBytes),  # PROGRAM_CHUNK_DATA bytes, the last piece fewer
)

# --------------------------------------------------------------------------
# Simulator link: the `sim` board backend (firmware/hal_sim.py, MicroPython unix port)
# and the host's world model exchange these as UDP datagrams on the loopback interface.
# --------------------------------------------------------------------------
SIM_KIND_SENSORS = 0x51
SIM_KIND_ACTUATORS = 0x52
SIM_KIND_RADIO = 0x53
SIM_KIND_CONTROL = 0x54

# World -> bed: the latest ADC codes of every channel.
SimSensors = Struct(
    "sim_kind" / Const(SIM_KIND_SENSORS, Int8ul),
    "seq" / Int32ul,
    "adc" / Array(SENSOR_CHANNELS, Int16ul),
)

# Bed -> world: every output, the watchdog's state and the bed's own (drifting) clock.
SimActuators = Struct(
    "sim_kind" / Const(SIM_KIND_ACTUATORS, Int8ul),
    "seq" / Int32ul,
    "outputs_permille" / Array(OUTPUT_CHANNELS, Int16sl),
    "watchdog_timeout_ms" / Int16ul,  # 0 while not armed
    "watchdog_feeds" / Int32ul,
    "watchdog_held" / Int8ul,  # the REPL has the console: the simulator keeps the watchdog fed
    "local_ticks_us" / Int32ul,
    "reset_requested" / Int8ul,  # 1: the firmware asks for a hard reset; 2: its power was cut
    "heater_enable" / Int8ul,  # 1: the heater enable relay is closed (the H-bridges have supply)
)

# World -> bed: what the simulator does to the unit's hardware from outside.
SimControl = Struct(
    "sim_kind" / Const(SIM_KIND_CONTROL, Int8ul),
    # Cut the power once this many more bytes have gone to flash (a write stops half-way);
    # -1 disarms.
    "power_cut_after_bytes" / Int32sl,
)

# Either way: one radio frame (a beacon) to or from the simulated medium.
SimRadio = Struct(
    "sim_kind" / Const(SIM_KIND_RADIO, Int8ul),
    # Bed -> world: the sender's clock when it sent; world -> bed: the receiver's clock when
    # the frame arrived, as a radio's receive timestamp (the medium's delay after sending).
    "ticks_us" / Int32ul,
    "payload" / Prefixed(Int8ul, GreedyBytes),
)

# Every top-level message, by the name the generated codec uses for it.
MESSAGES = {
    "beacon": Beacon,
    "program_chunk": ProgramChunk,
    "program_phase": ProgramPhase,
    "frame": ManagementFrame,
    "record": Record,
    "sim_sensors": SimSensors,
    "sim_actuators": SimActuators,
    "sim_radio": SimRadio,
    "sim_control": SimControl,
}

# Numeric constants the firmware needs, emitted into the generated codec.
CONSTANTS = {
    "PROTOCOL_VERSION": PROTOCOL_VERSION,
    "FRAME_FLAG": FRAME_FLAG,
    "FRAME_ESCAPE": FRAME_ESCAPE,
    "FRAME_ESCAPE_XOR": FRAME_ESCAPE_XOR,
    "FRAME_CONTROL_LIMIT": FRAME_CONTROL_LIMIT,
    "FRAME_BODY_MAX": FRAME_BODY_MAX,
    "RADIO_BEACON": RADIO_BEACON,
    "RADIO_PROGRAM_CHUNK": RADIO_PROGRAM_CHUNK,
    "PROGRAM_CHUNK_DATA": PROGRAM_CHUNK_DATA,
    "PROGRAM_CHUNKS_MAX": PROGRAM_CHUNKS_MAX,
    "PROGRAM_PHASES_MAX": PROGRAM_PHASES_MAX,
    "SANCTUARY_PEERS_MAX": SANCTUARY_PEERS_MAX,
    "SANCTUARY_PAGE": SANCTUARY_PAGE,
    "NO_ROOT": NO_ROOT,
    "TAG_LEN": TAG_LEN,
    "KEY_LEN": KEY_LEN,
    "BEACON_AIR_MAX": BEACON_AIR_MAX,
    "OUTPUT_CHANNELS": OUTPUT_CHANNELS,
    "SENSOR_CHANNELS": SENSOR_CHANNELS,
    "SIM_KIND_SENSORS": SIM_KIND_SENSORS,
    "SIM_KIND_ACTUATORS": SIM_KIND_ACTUATORS,
    "SIM_KIND_RADIO": SIM_KIND_RADIO,
    "SIM_KIND_CONTROL": SIM_KIND_CONTROL,
    "SETPOINT_MIN_MC": SETPOINT_MIN_MC,
    "SETPOINT_MAX_MC": SETPOINT_MAX_MC,
    "TRIP_MAX_MC": TRIP_MAX_MC,
    "PAD_PHYSICAL_MIN_MC": PAD_PHYSICAL_MIN_MC,
    "PAD_PHYSICAL_MAX_MC": PAD_PHYSICAL_MAX_MC,
    "AUTO_OFF_MAX_MIN": AUTO_OFF_MAX_MIN,
    "PROGRAM_DURATION_MAX_S": PROGRAM_DURATION_MAX_S,
    "CALIBRATION_DEVIATION_MAX_MK": CALIBRATION_DEVIATION_MAX_MK,
    "CALIBRATION_CHECK_LOW_MC": CALIBRATION_CHECK_LOW_MC,
    "CALIBRATION_CHECK_HIGH_MC": CALIBRATION_CHECK_HIGH_MC,
    "FAULT_MASK_ALL_DRIVE": FAULT_MASK_ALL_DRIVE,
    "FAULT_MASK_LEFT": FAULT_MASK_LEFT,
    "FAULT_MASK_RIGHT": FAULT_MASK_RIGHT,
}

# --------------------------------------------------------------------------
# The SB-1 board: electrical facts that the firmware (board.py, thermistor.py, sensing.py),
# the station's calibration and the simulator's pad model must agree on. Not on the wire,
# hence not in the protocol hash; generated into firmware consts like the wire constants.
# --------------------------------------------------------------------------
NTC_R25_OHM = 10_000  # nominal thermistor: R at 25 degC
NTC_B_KELVIN = 3950  # and its B constant
NTC_PULLUP_OHM = 10_000  # the divider's pull-up to the ADC reference
ADC_FULL_SCALE = 65_535  # read_u16
ADC_MIDSCALE = 32_768  # the BCG channel's code at rest (AC-coupled around mid scale)
DRIVE_FULL_POWER_W = 120  # one zone's heater at full drive
CURRENT_FULL_SCALE_MA = 12_000  # current sense at ADC full scale

BOARD_CONSTANTS = {
    "NTC_R25_OHM": NTC_R25_OHM,
    "NTC_B_KELVIN": NTC_B_KELVIN,
    "NTC_PULLUP_OHM": NTC_PULLUP_OHM,
    "ADC_FULL_SCALE": ADC_FULL_SCALE,
    "ADC_MIDSCALE": ADC_MIDSCALE,
    "DRIVE_FULL_POWER_W": DRIVE_FULL_POWER_W,
    "CURRENT_FULL_SCALE_MA": CURRENT_FULL_SCALE_MA,
}

# Enumerations whose names the firmware and host tools refer to.
ENUMS = {
    "FrameKind": FrameKind,
    "MessageId": MessageId,
    "RecordKind": RecordKind,
    "ResetCause": ResetCause,
    "CalibrationState": CalibrationState,
    "OutputChannel": OutputChannel,
    "ErrorCode": ErrorCode,
    "Occupancy": Occupancy,
    "WakeReadiness": WakeReadiness,
    "SleepState": SleepState,
    "VitalsValid": VitalsValid,
    "BeaconFlags": BeaconFlags,
    "RadioVerdict": RadioVerdict,
    "AutotuneState": AutotuneState,
    "FaultCode": FaultCode,
    "BootState": BootState,
    "RebootMethod": RebootMethod,
    "PadMode": PadMode,
    "RecordFlags": RecordFlags,
    "HapticPattern": HapticPattern,
    "SelfTest": SelfTest,
}
