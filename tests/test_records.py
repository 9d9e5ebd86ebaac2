"""Persistent records (SPEC §3): firmware/records.py and storage.py under real MicroPython.

Each scenario is one MicroPython run in tmp_path (the flash directory) driving
tests/mp/records_harness.py; the host then checks the files with its own codec.
"""

import importlib.util
import struct

import pytest

from mpexec import MP_HELPERS, run_micropython
from soma.crosscheck.firmware_codec import LAYOUT_IDS
from soma_protocol import codec
from soma_protocol.enums import RecordKind

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core

MISSING, VALID, CORRUPT = 0, 1, 2
CALIBRATION, CONFIG, COMFORT, KEY = (
    int(kind) for kind in (RecordKind.calibration, RecordKind.config, RecordKind.comfort, RecordKind.key)
)
FILES = {CALIBRATION: ["cal.a", "cal.b"], CONFIG: ["cfg"], COMFORT: ["comfort"], KEY: ["key.a", "key.b"]}
TWO_GENERATIONS = (CALIBRATION, KEY)

# Realistic values, a first and a second generation of each kind.
FIRST = {
    # Steinhart-Hart a, b, c and residual per thermistor, BCG zero and gain, time, station.
    CALIBRATION: [1.129148e-3, 2.34125e-4, 8.76741e-8, 42]
    + [1.1292e-3, 2.3412e-4, 8.77e-8, 37]
    + [1.1305e-3, 2.3389e-4, 8.8e-8, 55]
    + [-1234, 98_304, 1_767_225_600, b"bench-07 fw1.2"],
    # PID gains (Q16) per zone, trip and set point limits, supervisor limits.
    CONFIG: [196_608, 1_966, 6_553, 190_000, 2_100, 6_000, 42_000, 13_000, 40_000]
    + [64_000, 500, 2_000, 120, 3_000, 300, 60, 3_000, 720, 240],
    COMFORT: [27_500, 24_000, 800, 300],
    KEY: [0x5A17, 3, bytes(range(1, 33))],
}
SECOND = {
    CALIBRATION: [1.1301e-3, 2.3398e-4, 8.81e-8, 12]
    + [1.1299e-3, 2.3401e-4, 8.79e-8, 19]
    + [1.1287e-3, 2.3415e-4, 8.75e-8, 23]
    + [-1180, 97_000, 1_767_312_000, b"line-2"],
    CONFIG: [200_000, 1_900, 6_600, 200_000, 1_900, 6_600, 42_000, 14_000, 39_000]
    + [63_500, 700, 1_500, 90, 2_500, 240, 45, 2_500, 600, 200],
    COMFORT: [-1_000, 31_000, 0, 1_000],
    KEY: [0x5A17, 4, bytes(range(100, 132))],
}


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def stored(values):
    return [f32(v) if isinstance(v, float) else v for v in values]


def run(tmp_path, body):
    """Run `body` under MicroPython in tmp_path with the harness and FIRST/SECOND in scope."""
    prelude = (
        f"import json, os\nfrom records_harness import *\nFIRST = {FIRST!r}\nSECOND = {SECOND!r}\n"
        f"RECORD_LAYOUT = {LAYOUT_IDS['record']}\n"
    )
    return run_micropython(prelude + body, heap="96K", cwd=tmp_path)


def test_round_trip_every_kind_and_host_codec_reads_the_files(tmp_path):
    out = run(
        tmp_path,
        """
from wire_codec import ProtocolError
store = new_store()
out = {}
for kind in FIRST:
    before = list(store.load(kind))
    generation = store.save(kind, FIRST[kind])
    state, loaded, values = store.load(kind)
    out[str(kind)] = [before, generation, state, loaded, values == stored(FIRST[kind])]
# The longest station name fits the preallocated buffers; one more byte is refused unwritten.
long = FIRST[1][:-1] + [b"s" * 255]
out["long"] = [store.save(1, long), store.load(1)[2] == stored(long)]
refused = []
too_long = FIRST[1][:-1] + [b"s" * 256]
for kind, values in ((1, too_long), (2, FIRST[2][:-1]), (3, [0, 0, 0, 70000]), (4, [1, 2, b"short"])):
    try:
        store.save(kind, values)
    except ProtocolError:
        refused.append(kind)
out["refused"] = refused
out["after_refused"] = [store.load(kind)[:2] for kind in (1, 2, 3, 4)]
out["files"] = listing()
print(json.dumps(out))
""",
    )
    for kind in FIRST:
        assert out[str(kind)] == [[MISSING, 0, None], 1, VALID, 1, True]
    assert out["long"] == [2, True]
    assert out["refused"] == [CALIBRATION, CONFIG, COMFORT, KEY]
    assert out["after_refused"] == [[VALID, 2], [VALID, 1], [VALID, 1], [VALID, 1]]
    assert out["files"] == ["cal.a", "cal.b", "cfg", "comfort", "key.a"]

    # The host's construct codec reads what the firmware wrote.
    for kind, name in ((CALIBRATION, "cal.a"), (CONFIG, "cfg"), (COMFORT, "comfort"), (KEY, "key.a")):
        record = codec.decode("record", (tmp_path / name).read_bytes())
        assert record[:3] == [kind, 1, 1]
        assert codec.decode(codec.record_payload_name(kind), record[3]) == stored(FIRST[kind])
    record = codec.decode("record", (tmp_path / "cal.b").read_bytes())
    assert record[:3] == [CALIBRATION, 1, 2]
    assert codec.decode("calibration_data", record[3])[-1] == b"s" * 255


def test_generations_increase_alternate_slots_and_wrap(tmp_path):
    out = run(
        tmp_path,
        """
from wire_codec import unpack
def generations(kind):
    names = FILES[kind]
    return [unpack(RECORD_LAYOUT, get(n))[2] if n in listing() else None for n in names]
store = new_store()
out = {}
for kind in FIRST:
    expect = {}
    steps = []
    for i in range(5):
        values = (FIRST, SECOND)[i % 2][kind]
        generation = store.save(kind, values)
        expect[generation] = stored(values)
        steps.append([generation, generations(kind), outcome(store, kind, expect)])
    out[str(kind)] = steps
# A damaged newest generation is the slot the next save replaces; the older stays.
store.erase(1)
store.save(1, FIRST[1])
store.save(1, SECOND[1])
put("cal.b", get("cal.b")[:-1])
out["damaged"] = [list(store.load(1)[:2]), store.save(1, SECOND[1]), generations(1)]
# Only the second slot present: it is loaded, and the next save goes to the first.
store.erase(4)
put("key.b", record_bytes(4, 7, FIRST[4]))
out["b_only"] = [outcome(store, 4, {7: stored(FIRST[4])}), store.save(4, SECOND[4]), generations(4)]
# u32 wrap: 0xFFFFFFFF is older than 0 and 1.
put("key.a", record_bytes(4, 0xFFFFFFFE, FIRST[4]))
put("key.b", record_bytes(4, 0xFFFFFFFF, SECOND[4]))
wrap = [list(store.load(4)[:2])]
for values in (FIRST[4], SECOND[4]):
    wrap.append([store.save(4, values), generations(4), outcome(store, 4, {0: stored(FIRST[4]), 1: stored(SECOND[4])})])
out["wrap"] = wrap
put("cfg", record_bytes(2, 0xFFFFFFFF, FIRST[2]))
out["wrap_single"] = [store.save(2, SECOND[2]), outcome(store, 2, {0: stored(SECOND[2])})]
put("key.a" + ".tmp", b"leftover")
for kind in FIRST:
    store.erase(kind)
out["erased"] = [[store.load(kind)[0] for kind in FIRST], listing()]
print(json.dumps(out))
""",
    )
    slots = {
        2: [[1, None], [1, 2], [3, 2], [3, 4], [5, 4]],
        1: [[1], [2], [3], [4], [5]],
    }
    for kind in FIRST:
        expected = slots[len(FILES[kind])]
        assert out[str(kind)] == [[g, expected[g - 1], f"{VALID}:{g}"] for g in range(1, 6)]
    assert out["damaged"] == [[VALID, 1], 2, [1, 2]]
    assert out["b_only"] == [f"{VALID}:7", 8, [8, 7]]
    assert out["wrap"] == [
        [VALID, 0xFFFFFFFF],
        [0, [0, 0xFFFFFFFF], f"{VALID}:0"],
        [1, [0, 1], f"{VALID}:1"],
    ]
    assert out["wrap_single"] == [0, f"{VALID}:0"]
    assert out["erased"] == [[MISSING] * 4, []]


def sweep_expectations(result, variants):
    """What a sweep of `variants(size)` damaged files must give for one kind."""
    counts = [variants(size) for size in result["sizes"]]
    first, second = counts[0], counts[-1]
    expected = {"alone": {f"{CORRUPT}:0": first}}
    if "newest" in result:
        expected["newest"] = {f"{VALID}:1": second}
        expected["older"] = {f"{VALID}:2": first}
        expected["both"] = {f"{CORRUPT}:0": min(first, second)}
    return expected


def test_truncated_or_overlong_files_are_corrupt_or_fall_back(tmp_path):
    out = run(
        tmp_path,
        """
out = {}
for kind in FIRST:
    out[str(kind)] = [sweep(kind, FIRST[kind], SECOND[kind], truncations),
                      sweep(kind, FIRST[kind], SECOND[kind], extensions)]
print(json.dumps(out))
""",
    )
    for kind in FIRST:
        cut, grown = out[str(kind)]
        assert cut["sizes"][0] > 16
        assert {k: v for k, v in cut.items() if k != "sizes"} == sweep_expectations(cut, lambda size: size)
        assert {k: v for k, v in grown.items() if k != "sizes"} == sweep_expectations(grown, lambda size: 3)


def test_every_single_bit_flip_is_caught(tmp_path):
    out = run(
        tmp_path,
        """
print(json.dumps({str(kind): sweep(kind, FIRST[kind], SECOND[kind], bit_flips) for kind in FIRST}))
""",
    )
    for kind in FIRST:
        result = out[str(kind)]
        assert {k: v for k, v in result.items() if k != "sizes"} == sweep_expectations(result, lambda size: 8 * size)


def test_foreign_and_garbage_content_is_corrupt(tmp_path):
    out = run(
        tmp_path,
        """
def garbage(kind):
    # Deterministic noise, plus near-misses of a valid record.
    seed = 12345
    for n in (0, 1, 4, 15, 16, 17, 40, 100, 326, 327, 2000):
        buf = bytearray(n)
        for i in range(n):
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            buf[i] = seed >> 16 & 0xFF
        yield bytes(buf)
        yield b"SOMR" + bytes(buf)
    for other in FIRST:
        if other != kind:
            yield record_bytes(other, 1, FIRST[other])  # another kind's record
            yield record_bytes(kind, 1, FIRST[other], payload_kind=other)  # another kind's payload
    for version in (0, 2, 255):
        yield record_bytes(kind, 1, FIRST[kind], version=version)
    for wrong in (0, 5, 255):
        yield record_bytes(wrong, 1, FIRST[kind], payload_kind=kind)

def damage(kind, victim):
    expect = {1: stored(FIRST[kind])}
    counts = tally(store, kind, victim, garbage(kind), expect)
    os.remove(victim)
    os.mkdir(victim)  # a directory where the record file should be
    counts["dir"] = outcome(store, kind, expect)
    os.rmdir(victim)
    return counts

store = new_store()
out = {}
for kind in FIRST:
    store.save(kind, FIRST[kind])
    out[str(kind)] = [damage(kind, FILES[kind][0])]
    if kind in TWO_GENERATIONS:  # damage the newest of two: the older one stands
        store.save(kind, FIRST[kind])
        store.save(kind, SECOND[kind])
        out[str(kind)].append(damage(kind, FILES[kind][1]))
    store.erase(kind)
print(json.dumps(out))
""",
    )
    garbage_count = 11 * 2 + 3 * 2 + 3 + 3
    alone = {f"{CORRUPT}:0": garbage_count, "dir": f"{CORRUPT}:0"}
    fallback = {f"{VALID}:1": garbage_count, "dir": f"{VALID}:1"}
    for kind in FIRST:
        assert out[str(kind)] == ([alone, fallback] if kind in TWO_GENERATIONS else [alone])


def test_power_cut_leftover_temporary_files(tmp_path):
    out = run(
        tmp_path,
        """
store = new_store()
out = {}
for kind in FIRST:
    files = FILES[kind]
    first = record_bytes(kind, 1, FIRST[kind])
    for name in files:  # cut mid-write before any record existed
        put(name + ".tmp", first[: len(first) // 2])
    steps = [outcome(store, kind, {})]
    steps.append(store.save(kind, FIRST[kind]))
    expect = {1: stored(FIRST[kind]), 2: stored(SECOND[kind])}
    steps.append(outcome(store, kind, expect))
    target = files[-1]  # the file the next save replaces
    second = record_bytes(kind, 2, SECOND[kind])
    put(target + ".tmp", second)  # cut after the temporary was written, before the rename
    steps.append(outcome(store, kind, expect))
    put(target + ".tmp", second[:5])  # cut mid-write
    steps.append(outcome(store, kind, expect))
    steps.append(store.save(kind, SECOND[kind]))
    steps.append(outcome(store, kind, expect))
    steps.append([n for n in listing() if n.startswith(files[0][:3])])
    out[str(kind)] = steps
import records_storage_check
os.mkdir("flash")
out["storage"] = [records_storage_check.check(""), records_storage_check.check("flash"), listing()]
print(json.dumps(out))
""",
    )
    for kind in FIRST:
        files = FILES[kind]
        assert out[str(kind)] == [
            f"{MISSING}:0",
            1,
            f"{VALID}:1",
            f"{VALID}:1",
            f"{VALID}:1",
            2,
            f"{VALID}:2",
            files,  # every temporary was overwritten and renamed by a later save
        ]
    fw_root, fw_sub, files = out["storage"]
    assert fw_root == fw_sub == STORAGE_REPORT
    assert "flash" in files and "x" not in files


STORAGE_REPORT = {
    "missing": [None, False, False],
    "replaced": ["new", True, False],
    "leftover_tmp": ["new", True, True],
    "tmp_overwritten": ["newest", True, False],
    "renamed": ["yyy", True, False, None, False, False],
    "open_read": "yyy",
    "removed": [None, False, False],
}


def test_flash_storage_under_cpython(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("records_storage_check", MP_HELPERS / "records_storage_check.py")
    assert spec and spec.loader
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    assert check.check(str(tmp_path)) == STORAGE_REPORT
    (tmp_path / "flash").mkdir()
    monkeypatch.chdir(tmp_path)
    assert check.check(".") == STORAGE_REPORT
    assert check.check("flash/") == STORAGE_REPORT
