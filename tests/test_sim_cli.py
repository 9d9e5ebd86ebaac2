"""`soma sim` as a user runs it: JSON with the ports (and each bed's safety oracle verdict), the
control verbs, a clean stop with no process or port left behind, and one-line errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import serial

SOMA = str(Path(sys.executable).with_name("soma"))


def soma(*args):
    return subprocess.run([SOMA, *args], capture_output=True, text=True, timeout=60)


def start_sim(tmp_path, beds, *options):
    control = str(tmp_path / "control.sock")
    process = subprocess.Popen(
        [SOMA, "sim", "--beds", str(beds), "--root", str(tmp_path / "beds"), "--control", control, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    while not (lines and lines[-1] == "}"):
        line = process.stdout.readline()
        assert line, process.stderr.read()
        lines.append(line.rstrip("\n"))
    return process, control, json.loads("\n".join(lines))


def test_ctrl_c_leaves_no_process_or_port_behind(tmp_path):
    process, control, described = start_sim(tmp_path, 4)
    ports = [bed["port"] for bed in described["beds"]]
    assert len(_micropython_pids(tmp_path / "beds")) == 4
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 0
    time.sleep(0.2)
    assert not _micropython_pids(tmp_path / "beds")
    assert not any(os.path.exists(port) for port in ports) and not os.path.exists(control)


def test_sim_runs_beds_takes_faults_and_stops_cleanly(tmp_path):
    process, control, described = start_sim(tmp_path, 2)
    ports = [bed["port"] for bed in described["beds"]]
    assert len(ports) == 2 and described["control"] == control
    with serial.Serial(ports[0], 115200, timeout=1):
        pass  # pyserial opens the port like a USB serial port
    status = json.loads(soma("sim", "--control", control, "status").stdout)
    assert status["beds"][1]["port"] == ports[1]
    assert [bed["safety"]["breaches"] for bed in status["beds"]] == [0, 0]  # each bed's oracle, so far
    assert soma("sim", "--control", control, "fault", "--bed", "2", "open", "0").returncode == 0
    bad = soma("sim", "--control", control, "fault", "--bed", "9", "open", "0")
    assert bad.returncode == 2 and "bed must be 1..2" in bad.stderr and len(bad.stderr.splitlines()) == 1
    pids = _micropython_pids(tmp_path / "beds")
    assert len(pids) == 2
    assert soma("sim", "--control", control, "stop").returncode == 0
    assert process.wait(timeout=15) == 0
    time.sleep(0.2)
    assert not _micropython_pids(tmp_path / "beds")
    assert not any(os.path.exists(port) for port in ports)
    assert not os.path.exists(control)


def test_a_recording_of_a_bed_replays_through_the_sensing_pipeline(tmp_path):
    process, control, _ = start_sim(tmp_path, 1, "--in-bed-at", "0")
    try:
        recording = tmp_path / "bed1.csv"
        result = soma("sim", "--control", control, "record", "--bed", "1", "--seconds", "31", str(recording))
        assert result.returncode == 0, result.stderr
        busy = soma("sim", "--control", control, "record", "--bed", "3", "--seconds", "5", str(recording))
        assert busy.returncode == 2 and "bed must be 1..1" in busy.stderr
    finally:
        soma("sim", "--control", control, "stop")
        process.wait(timeout=15)
    header = recording.read_text().splitlines()[0]
    assert header == "time_s,bcg,present,moving,heart_bpm,breaths_per_min,stage"
    result = soma("replay", str(recording))
    assert result.returncode == 0, result.stderr
    (epoch,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert epoch["t_s"] == 30 and epoch["presence"] == "occupied"


def test_verbs_without_a_simulator_say_so(tmp_path):
    result = soma("sim", "--control", str(tmp_path / "none.sock"), "stop")
    assert result.returncode == 2
    assert "no simulator runs" in result.stderr and "Traceback" not in result.stderr


def _micropython_pids(root):
    """Processes running with a flash directory under root."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(root) in os.readlink(entry / "cwd"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_ports_finds_the_simulators_soma_units_and_blank_boards(tmp_path):
    control = str(tmp_path / "control.sock")
    flashed = subprocess.Popen(
        [SOMA, "sim", "--beds", "1", "--root", str(tmp_path / "a"), "--control", control],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        described = json.loads("".join(iter(flashed.stdout.readline, "}\n")) + "}")
        time.sleep(1.0)  # the unit boots
        listing = subprocess.run(
            [SOMA, "ports", "--json", "--control", control], capture_output=True, text=True, timeout=60
        )
        assert listing.returncode == 0, listing.stderr
        entries = {entry["port"]: entry for entry in map(json.loads, listing.stdout.splitlines())}
        unit = entries[described["beds"][0]["port"]]
        assert unit["kind"] == "soma" and unit["serial"] == described["beds"][0]["serial"]
    finally:
        flashed.send_signal(signal.SIGINT)
        flashed.wait(timeout=15)
