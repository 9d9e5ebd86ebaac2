"""`soma decode` and `soma tour` as a user runs them: JSON for good frames, one line and exit 2 for bad input."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from soma_protocol import auth, codec, framing

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core

KEY = bytes(range(32))
VALUES = [5, 2, 1, 42, 3, 1, 40, 123456789, 7, 2, 99, 2, 3, 120, 60, -40, 1, b""]
BEACON = auth.sign_beacon(KEY, VALUES)


SOMA = str(Path(sys.executable).with_name("soma"))  # the installed entry point


def soma(*args, stdin=None):
    return subprocess.run([SOMA, *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_help_lists_subcommands_with_examples():
    assert "decode" in soma("--help").stdout
    assert "Examples:" in soma("decode", "--help").stdout


@pytest.mark.parametrize("firmware", [False, True])
def test_beacon_fields(firmware):
    result = soma("decode", BEACON.hex(), *(["--firmware"] if firmware else []))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["message"] == "beacon"
    assert document["fields"]["bed_id"] == 2
    assert document["fields"]["global_time_us"] == 123456789
    assert document["fields"]["occupancy"] == "occupied"
    assert document["fields"]["flags"] == ["synced", "is_root"]


def test_host_and_firmware_print_the_same():
    frame = codec.encode(
        "frame", [2, 9, 3, codec.encode("sensor_readings", [1, 2, 3, 4, 5, 6, 25000, -100, 21000, 7, 8])]
    )
    host = soma("decode", framing.encode(frame).hex())
    fw = soma("decode", "--firmware", framing.encode(frame).hex())
    assert host.returncode == fw.returncode == 0
    assert json.loads(host.stdout) == json.loads(fw.stdout)
    assert json.loads(host.stdout)["fields"]["payload"]["pad_right_mc"] == -100


def test_key_checks_the_tag(tmp_path):
    key_file = tmp_path / "sanctuary.key"
    key_file.write_text(KEY.hex())
    assert json.loads(soma("decode", "--key", str(key_file), BEACON.hex()).stdout)["authenticated"] is True
    key_file.write_text(bytes(32).hex())
    assert json.loads(soma("decode", "--key", str(key_file), BEACON.hex()).stdout)["authenticated"] is False
    assert KEY.hex() not in soma("decode", "--key", str(key_file), BEACON.hex()).stdout


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("zz", "not hex"),
        (BEACON.hex()[:40], "beacon"),
        ((BEACON[:-1] + b"\0").hex(), "CRC|checksum"),
        ("00", "unrecognised first byte"),
        ("7e4142437e", "frame"),
    ],
)
@pytest.mark.parametrize("firmware", [False, True])
def test_bad_input_one_line_exit_2(arg, message, firmware):
    result = soma("decode", arg, *(["--firmware"] if firmware else []))
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert re.search(message, result.stderr)
    assert "Traceback" not in result.stderr


def test_stdin_one_frame_per_line_keeps_going_after_a_bad_one():
    result = soma("decode", "-", stdin=f"{BEACON.hex()}\nzz\n{BEACON.hex()}\n")
    assert result.returncode == 2
    assert len(result.stdout.splitlines()) == 2
    assert len(result.stderr.splitlines()) == 1


def test_missing_key_file_is_a_clear_error(tmp_path):
    result = soma("decode", "--key", str(tmp_path / "none.key"), BEACON.hex())
    assert result.returncode == 2
    assert "cannot read key file" in result.stderr and "Traceback" not in result.stderr


def test_tour_shows_both_sides_agreeing():
    result = soma("tour", "--fuzz", "300")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 disagreements" in result.stdout
    assert "host and firmware agree on every byte" in result.stdout


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (bytes(4).hex(), "4 bytes, expected 32"),  # a short key is refused, not taken silently
        ("ab" * 200, "longer than a key file"),
        ("zz" * 32, "cannot read key file"),
    ],
)
def test_a_key_file_that_is_not_one_is_refused_in_one_line(tmp_path, content, reason):
    key_file = tmp_path / "sanctuary.key"
    key_file.write_text(content)
    result = soma("decode", "--key", str(key_file), BEACON.hex())
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and reason in result.stderr, result.stderr


def test_a_device_given_as_key_file_is_refused_not_read_for_ever():
    result = soma("decode", "--key", "/dev/zero", BEACON.hex())  # (timeout: 60 s)
    assert result.returncode == 2 and "longer than a key file" in result.stderr, result.stderr


@pytest.mark.parametrize("bed", ["0", "65535"])
def test_provision_refuses_a_bed_id_no_bed_can_have(bed, tmp_path):
    result = soma("provision", "--port", str(tmp_path / "none"), "--sanctuary", "7", "--bed", bed, "--key", "k")
    assert result.returncode == 2 and "--bed" in result.stderr and "Traceback" not in result.stderr, result.stderr
