"""The unit session (soma.link.session): every command that opens a unit asks its info once,
by field name, and refuses a unit on another protocol with one line and exit status 2;
`soma flash`, which is the fix, does not. One shared virtual bed; the real CLI in-process
(CliRunner) with this soma's expected protocol hash patched to differ from the unit's."""

import json

import pytest
from click.testing import CliRunner

from soma.cli import cli
from soma.link import session
from soma.link.session import UnitInfo, open_unit, probe
from soma.link.unit import UnitLink
from soma.sim.sanctuary import Sanctuary
from soma.station import flashing
from soma_protocol import codec
from soma_protocol.enums import BootState

pytestmark = pytest.mark.concurrent  # virtual beds in real time, no timing bar judged: two at a time

OTHER_HASH = 0x12345678
EXAMPLE = "examples/programs/short.json"


@pytest.fixture(scope="module")
def bed():
    with Sanctuary(beds=1, flashed=True, sleepers=False) as sanctuary:
        with UnitLink(sanctuary.beds[0].port) as link:
            assert session.Unit(link).wait_info(20) is not None  # booted and answering
        yield sanctuary


@pytest.fixture
def other_protocol(monkeypatch):
    """This soma now speaks another protocol than the bed's firmware."""
    monkeypatch.setattr(session, "host_protocol_hash", lambda: OTHER_HASH)


def run(*args):
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


# Every command that opens a unit, as a user would run it (`--port` filled in per bed).
COMMANDS = {
    "info": lambda s, tmp: ["info", "--port", s.beds[0].port],
    "monitor": lambda s, tmp: ["monitor", "--port", s.beds[0].port, "--seconds", "1", "--json"],
    "faults": lambda s, tmp: ["faults", "--port", s.beds[0].port],
    "faults --clear": lambda s, tmp: ["faults", "--port", s.beds[0].port, "--clear"],
    "sanctuary status": lambda s, tmp: ["sanctuary", "status", "--port", s.beds[0].port],
    "program upload": lambda s, tmp: ["program", "upload", "--port", s.beds[0].port, EXAMPLE],
    "provision": lambda s, tmp: (
        ["provision", "--port", s.beds[0].port, "--sanctuary", "7", "--bed", "3"]
        + ["--new-key", str(tmp / "sanctuary.key")]
    ),
    "bench": lambda s, tmp: ["bench", "--port", s.beds[0].port, "--fixture", s.bath.port, "--db", str(tmp / "db")],
    "calibrate": lambda s, tmp: ["calibrate", "--port", s.beds[0].port, "--bath", s.bath.port, "--db", str(tmp / "db")],
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_unit_on_another_protocol_is_refused_in_one_line(name, bed, other_protocol, tmp_path):
    code, out = run(*COMMANDS[name](bed, tmp_path))
    assert code == 2, out
    assert len(out.strip().splitlines()) == 1, out
    assert f"protocol hash mismatch: the unit speaks {bed_hash():08x}, this soma {OTHER_HASH:08x}" in out
    assert "flash it with `soma flash --port" in out and "Traceback" not in out
    assert not (tmp_path / "sanctuary.key").exists()  # provision wrote no key for a unit it refused


def test_flash_is_the_fix_so_it_does_not_refuse(bed, other_protocol):
    code, out = run("flash", "--port", bed.beds[0].port, "--json")
    assert code == 0, out
    assert json.loads(out)["status"] == "unchanged"  # the very image runs: nothing sent


def test_ports_probe_shows_the_mismatch_without_refusing(bed, other_protocol):
    entry = probe(bed.beds[0].port)
    assert entry["kind"] == "soma" and entry["serial"] == bed.beds[0].unit.serial
    assert entry["protocol_hash"] == f"{bed_hash():08x}" and entry["protocol_matches"] is False


def test_the_session_gives_info_fields_by_name(bed):
    unit_serial = bed.beds[0].unit.serial
    with open_unit(bed.beds[0].port) as unit:
        info = unit.info
        assert info.serial == unit_serial and info["unit_serial"] == unit_serial.encode()
        assert info.boot_state == BootState.confirmed and info["boot_state"] == BootState.confirmed
        assert info.protocol_hash == info["protocol_hash"] == session.host_protocol_hash()
        assert info.firmware_hash == info["firmware_hash"].hex() and len(info.firmware_hash) == 16
        assert unit.firmware_info() is info  # asked once, as the session opened
    code, out = run("info", "--port", bed.beds[0].port, "--json")
    assert code == 0, out
    assert json.loads(out) == {**info.as_dict(), "uptime_ms": json.loads(out)["uptime_ms"]}


def test_info_fields_follow_the_schema_names_not_positions():
    names = [leaf.path for leaf in codec.MESSAGES["info_response"].fields]
    values = codec.decode("info_response", codec.encode("info_response", _sample(names)))
    info = UnitInfo(values)
    assert list(info.as_dict()) == names
    assert info["bed_id"] == 3 and info["sanctuary_id"] == 7 and info["fault_mask"] == 0b101
    assert (info.serial, info.firmware_version, info.boot_state) == ("SB-0042", "1.2.3", BootState.trial)
    assert info.as_dict()["protocol_hash"] == "0badcafe"


def _sample(names):
    given = {
        "firmware_version": b"1.2.3",
        "firmware_hash": bytes(range(8)),
        "protocol_hash": 0x0BADCAFE,
        "unit_serial": b"SB-0042",
        "fault_mask": 0b101,
        "sanctuary_id": 7,
        "bed_id": 3,
        "boot_state": int(BootState.trial),
    }
    return [given.get(name, 0) for name in names]


def test_the_flash_receiver_is_its_file_with_the_hosts_parameters():
    source = flashing.receiver_source()
    compile(source, "flash_receiver", "exec")  # whole Python (MicroPython runs it: test_flash_stream)
    assert f"_BLOCK = const({flashing.BLOCK})" in source and "_ACK = '+'" in source
    assert '"""' not in source.split("\n", 1)[0]  # the docstring does not cross the line
    # The file's own values are the host's (it reads the same when linted or type-checked).
    text = flashing.RECEIVER.read_text()
    for name, value in flashing.RECEIVER_PARAMETERS.items():
        assert f"{name} = {flashing._parameter(value)}" in text.replace('"', "'")
    with pytest.raises(RuntimeError, match="parameter block"):
        flashing.receiver_source({**flashing.RECEIVER_PARAMETERS, "_EXTRA": 1})
    with pytest.raises(RuntimeError, match="parameter block"):
        flashing.receiver_source({k: v for k, v in flashing.RECEIVER_PARAMETERS.items() if k != "_ACK"})


def bed_hash():
    return session.ir.protocol_hash()
