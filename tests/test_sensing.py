"""The sleeper sensing pipeline (firmware/sensing.py): its filters are the designed ones and
keep to small ints; on simulated stretches of nights with known truth, run under
MicroPython with a 96 KiB heap, it finds presence, movement, breathing and heart rate
within the bars and a plausible sleep state, allocating nothing; `soma replay` reads
recordings (resampling other rates) and turns bad files away in one line."""

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soma import paths
from soma.sensing import filters as sensing_filters
from soma.sensing.replay import RATE_HZ, read_recording, run_pipeline_file
from soma.sim.sensing_night import score, simulate

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core

SMALL_INT = 1 << 30


def test_the_board_carries_the_designed_filters_and_their_ranges_hold():
    board = paths.import_firmware_module("board")
    assert board.BCG_FILTERS == sensing_filters.board_filters()
    heart_band, envelope, breathing = sensing_filters.SECTIONS
    bounds = {}
    for section in sensing_filters.SECTIONS:
        bounds[section.name], partial = sensing_filters.range_proof(section)
        assert partial < SMALL_INT  # every product and partial sum of the section
    # The heart band's |y|, 4 summed and quartered, is within the envelope's input bound;
    # the envelope (halved) and the breathing band fit their int16 windows.
    assert bounds[heart_band.name] <= envelope.input_bound
    assert bounds[envelope.name] >> 1 < 1 << 15
    assert bounds[breathing.name] < 1 << 15
    # A 10-sample sum of |x| < 2^14, divided by 8, is within the breathing band's input bound.
    assert 10 * (1 << 14) >> 3 <= breathing.input_bound


@settings(max_examples=40, deadline=None)
@given(
    codes=st.lists(st.sampled_from([0, 1, 32768, 65534, 65535]) | st.integers(0, 65535), min_size=1, max_size=200),
    zero=st.integers(-32768, 32767),
    gain_q16=st.integers(0, 4 * 65536),
)
def test_no_input_or_calibration_takes_the_pipeline_out_of_small_ints(codes, zero, gain_q16):
    sensing_module = paths.import_firmware_module("sensing")
    sensing = sensing_module.Sensing()
    sensing.calibrate([0] * 12 + [zero, gain_q16])
    for n in range(3100):  # an epoch: both windows' rates included
        sensing.sample(codes[n % len(codes)])  # int16 windows raise OverflowError if a value leaves them
        sensing.step()
    assert sensing.epoch[0] == 1
    state = list(sensing._v)  # every int of its state, the autocorrelation included
    assert all(abs(value) < SMALL_INT for value in state)
    for section in range(3):  # the filters' x1, x2, y1, y2
        assert all(abs(value) < 1 << 15 for value in state[29 + 9 * section : 33 + 9 * section])


def test_a_sleeper_getting_into_bed_is_seen_within_an_epoch():
    stretch = simulate("test/in", 300, 900)  # they get into bed 600 s into the night
    presence = [(e["t_s"], e["presence"]) for e in stretch.epochs]
    assert all(p == "empty" for t, p in presence if t <= 300)
    assert all(p == "occupied" for t, p in presence if t >= 360)
    assert score([stretch])["presence_accuracy"] >= 29 / 30
    assert all(e["sleep_state"] == "unknown" and not e["valid"]["heart"] for e in stretch.epochs[:9])


def test_rates_within_the_bars_movement_flagged_and_deep_sleep_found():
    stretch = simulate("test/3", 1800, 1800)  # light and deep sleep, and a few movements
    figures = score([stretch])
    assert figures["presence_accuracy"] == 1.0
    assert figures["hr_mae_bpm"] <= 2.0 and figures["rr_mae_per_min"] <= 1.0
    assert figures["hr_valid_ratio"] >= 0.9 and figures["rr_valid_ratio"] >= 0.8
    assert figures["movement_recall"] == 1.0 and figures["movement_false_ratio"] == 0.0
    assert any(e["moving"] for e in stretch.epochs)
    assert figures["valid_during_movement"] == 0  # never a valid rate from an epoch with movement
    states = [e["sleep_state"] for e in stretch.epochs]
    assert states.count("deep") >= 8 and figures["deep_precision"] >= 0.8
    assert "light" in states
    assert stretch.cost["sample_alloc_bytes"] == 0 and stretch.cost["step_alloc_bytes"] == 0


def test_a_bed_left_empty_is_empty_with_no_rates():
    stretch = simulate("test/in", 0, 310)  # an epoch closes a moment after its end
    assert [e["presence"] for e in stretch.epochs] == ["empty"] * 10
    assert not any(e["valid"]["heart"] or e["valid"]["breathing"] or e["moving"] for e in stretch.epochs)


def _write(path, rate_hz, seconds, sleeper_start_s=3600):
    from soma.sim.sleeper import Sleeper

    sleeper = Sleeper("test/3")
    lines = ["time_s,bcg"]
    for n in range(int(seconds * rate_hz)):
        t = n / rate_hz
        lines.append(f"{t:.5f},{sleeper.bcg_code(sleeper_start_s + t)}")
    path.write_text("\n".join(lines) + "\n")


def test_other_rates_are_resampled_to_the_same_estimates(tmp_path):
    _write(tmp_path / "r100.csv", 100, 95)
    _write(tmp_path / "r250.csv", 250, 95)
    with read_recording(tmp_path / "r100.csv") as at_100, read_recording(tmp_path / "r250.csv") as at_250:
        assert at_250.source_rate_hz == 250 and at_250.samples == at_100.samples == 95 * RATE_HZ
        assert at_100.codes_path.stat().st_size == 2 * 95 * RATE_HZ
        epochs_100, _ = run_pipeline_file(at_100.codes_path)
        epochs_250, _ = run_pipeline_file(at_250.codes_path)
    assert [e["presence"] for e in epochs_250] == [e["presence"] for e in epochs_100] == ["occupied"] * 3
    for a, b in zip(epochs_100, epochs_250, strict=True):
        assert a["valid"] == b["valid"]
        if a["valid"]["heart"]:
            assert abs(a["heart_bpm"] - b["heart_bpm"]) <= 1.0


def soma(*args):
    return subprocess.run([sys.executable, "-m", "soma.cli", *map(str, args)], capture_output=True, text=True)


def test_replay_prints_epochs_and_draws_them(tmp_path):
    _write(tmp_path / "night.csv", 100, 65)
    result = soma("replay", tmp_path / "night.csv", "--plot", tmp_path / "night.png")
    assert result.returncode == 0, result.stderr
    epochs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["t_s"] for e in epochs] == [30, 60]
    assert set(epochs[0]) == {
        "t_s",
        "presence",
        "movement_s",
        "moving",
        "breaths_per_min",
        "heart_bpm",
        "valid",
        "sleep_state",
    }
    assert (tmp_path / "night.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_last_whole_epoch_is_reported_and_a_partial_one_is_said_to_be_too_short(tmp_path):
    _write(tmp_path / "whole.csv", 100, 60)  # ends exactly at the second epoch's end
    result = soma("replay", tmp_path / "whole.csv")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert [json.loads(line)["t_s"] for line in result.stdout.splitlines()] == [30, 60]
    _write(tmp_path / "more.csv", 100, 75)
    result = soma("replay", tmp_path / "more.csv")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["t_s"] for line in result.stdout.splitlines()] == [30, 60]
    assert result.stderr == f"{tmp_path / 'more.csv'}: the last 15 s are too short for a 30 s epoch: not reported\n"


def _write_quickly(path, seconds):
    """A 100 Hz recording with a text column, written fast (its content does not matter)."""
    with path.open("w") as f:
        f.write("time_s,bcg,stage\n")
        f.writelines(f"{n / 100:.2f},{32768 + n % 977},light\n" for n in range(seconds * RATE_HZ))


def _peak_rss_kib_reading(path):
    script = (
        "import resource, sys\n"
        "from soma.sensing.replay import read_recording\n"
        "with read_recording(sys.argv[1]) as recording:\n"
        "    print(recording.samples, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True)
    return [int(word) for word in result.stdout.split()]


def test_reading_a_recording_takes_memory_that_does_not_grow_with_its_length(tmp_path):
    # Held whole, 50 extra minutes at 100 Hz would be ~300,000 rows: tens of MB more.
    _write_quickly(tmp_path / "10min.csv", 600)
    _write_quickly(tmp_path / "60min.csv", 3600)
    samples_10, peak_10 = _peak_rss_kib_reading(tmp_path / "10min.csv")
    samples_60, peak_60 = _peak_rss_kib_reading(tmp_path / "60min.csv")
    assert (samples_10, samples_60) == (600 * RATE_HZ, 3600 * RATE_HZ)
    assert peak_60 <= peak_10 + 4096, (peak_10, peak_60)


def test_bad_recordings_get_one_line_and_exit_2(tmp_path):
    cases = {
        "noheader.csv": ("1,32768\n2,32770\n", "no header row"),
        "text.csv": ("time_s,bcg\n0,32768\n0.01,loud\n", "'loud' is not a number"),
        "range.csv": ("bcg\n32768\n70000\n", "not a 16-bit ADC code"),
        "slow.csv": ("time_s,bcg\n0,1\n0.1,2\n0.2,3\n", "too slow"),
        "nocolumn.csv": ("time_s,pressure\n0,1\n", "no column 'bcg'"),
        "backwards.csv": ("time_s,bcg\n0,1\n0.01,2\n0.005,3\n", "does not increase"),
        "empty.csv": ("", "empty"),
        "binary.csv": (b"\xff\xfe\x00garbage", "cannot read it"),
        "short.csv": ("bcg\n" + "32768\n" * 2999, "29.99 s of samples, too short for one 30 s epoch"),
        "field.csv": ("time_s,bcg\n0,1\n0.01," + "9" * 140_000 + "\n", "field.csv:3: not CSV (field larger than"),
        "wide.csv": ("time_s,bcg\n0,1\n" + "1," * 600_000 + "\n", "wide.csv:3: a line longer than 1024 KiB"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
        result = soma("replay", path)
        assert result.returncode == 2, (name, result.stderr)
        assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, (name, result.stderr)
        assert message in result.stderr, (name, result.stderr)
    result = soma("replay", "/dev/zero")  # read a line at a time: refused at the first 1 MiB
    assert result.returncode == 2 and "/dev/zero:1:" in result.stderr, result.stderr
    result = soma("replay", tmp_path / "missing.csv")
    assert result.returncode == 2 and "cannot read it" in result.stderr
    _write(tmp_path / "ok.csv", 100, 5)
    result = soma("replay", tmp_path / "ok.csv", "--rate", "50")
    assert result.returncode == 2 and "time_s says 100.0 Hz" in result.stderr
