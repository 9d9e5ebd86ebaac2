"""Program files: the examples compile to the expected ProgramData, every kind of bad file is
one line naming the file and the key, `soma program show` as a user runs it, and the
upload's version and start rules."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from soma.cli import cli
from soma.sanctuary.program import TOP_KEYS, ProgramError, format_duration, from_data, load
from soma.sanctuary.program_wire import compile_program, decide_upload, program_data
from soma_protocol import codec
from soma_protocol.enums import HapticPattern, PadMode

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "programs"
NIGHT = EXAMPLES / "night.toml"
SHORT = EXAMPLES / "short.json"
ABSOLUTE, OFFSET, OFF, KEEP = (int(PadMode[name]) for name in ("absolute", "comfort_offset", "off", "keep"))
HAPTIC_OFF, PULSE, WAVE = (int(HapticPattern[name]) for name in ("off", "pulse", "wave"))


def phase(at_s, pad_mode, pad_mc, light_permille, light_ramp_s=0, haptic=HAPTIC_OFF):
    return {
        "at_s": at_s,
        "pad_mode": pad_mode,
        "pad_mc": pad_mc,
        "light_permille": light_permille,
        "light_ramp_s": light_ramp_s,
        "haptic": haptic,
    }


def compiled(path, version=1, start_us=0):
    values = compile_program(load(path), version, start_us)
    assert codec.decode("program_data", codec.encode("program_data", values)) == values
    return program_data(values)


def test_the_night_example_compiles_to_its_program_data():
    data = compiled(NIGHT, version=3, start_us=5_000_000)
    phases = [
        phase(0, ABSOLUTE, 34_000, 200, 600),  # wind-down warmth
        phase(1800, OFFSET, -1500, 0, 900),  # sleep-onset cooling
        phase(7200, OFFSET, -1000, 0),  # deep-sleep hold: the light stays off
    ]
    assert data == {
        "program_id": 7,
        "version": 3,
        "start_us": 5_000_000,
        "duration_s": 8 * 3600,
        "budget_w": 600,
        "beds": 8,
        "wake_at_s": 7 * 3600 + 40 * 60,
        "smart_window_s": 1800,
        "ushering_ramp_s": 600,
        "ushering_light_permille": 1000,
        "ushering_pad_mode": OFFSET,
        "ushering_pad_mc": 1000,
        "ushering_haptic": PULSE,
        "phases": phases,
    }


def test_the_short_json_example_compiles_to_its_program_data():
    program = load(SHORT)
    assert (program.id, program.version, program.name) == (2, 1, "short demo")
    data = compiled(SHORT)
    assert len(data["phases"]) == 3 and data["duration_s"] == 120 and data["beds"] == 2 and data["budget_w"] == 0
    assert data["phases"] == [
        phase(0, ABSOLUTE, 32_500, 300, 10),
        phase(20, OFFSET, -1500, 0, 20, WAVE),
        phase(60, OFF, 0, 0),
    ]
    assert (data["wake_at_s"], data["smart_window_s"], data["ushering_ramp_s"]) == (100, 30, 10)
    assert (data["ushering_pad_mode"], data["ushering_pad_mc"], data["ushering_haptic"]) == (OFFSET, 1000, PULSE)


def base(**changes):
    data = {"id": 1, "duration": "1h", "ushering": {"at": "50m"}, "phase": [{"at": "0s", "light": 50}]}
    data.update(changes)
    return data


def test_a_phase_without_light_keeps_the_light_on_its_course():
    ramping = base(phase=[{"at": 0, "light": 50, "light_ramp": "100s"}, {"at": "40s", "pad": "off"}])
    data = program_data(compile_program(from_data(ramping), 1))
    assert data["phases"][1]["light_permille"] == 500 and data["phases"][1]["light_ramp_s"] == 60
    first = program_data(compile_program(from_data(base(phase=[{"at": 0}])), 1))["phases"][0]
    assert (first["pad_mode"], first["light_permille"], first["light_ramp_s"]) == (KEEP, 0, 0)


def test_defaults_and_duration_forms():
    program = from_data({"id": 9, "duration": 7200, "ushering": {"at": "1h59m59s"}})
    assert (program.version, program.budget_w, program.beds, program.phases) == (None, 0, 1, ())
    assert (program.ushering.light_permille, program.ushering.ramp_s, program.ushering.pad_mode) == (1000, 0, "keep")
    assert program.ushering.at_s == 7199
    assert [format_duration(s) for s in (0, 90, 27600, 3605)] == ["0s", "1m30s", "7h40m", "1h5s"]


HEAD = 'id = 1\nduration = "1h"\n'
USHERING = '[ushering]\nat = "50m"\nsmart_window = "10m"\n'
BAD_TOML = [
    (HEAD + "colour = 1\n" + USHERING, "unknown keys colour"),
    (HEAD + "[[phase]]\nat = 0\nlite = 3\n" + USHERING, "phase 1: unknown keys lite"),
    (HEAD + '[ushering]\nat = "50m"\nsnooze = 1\n', "ushering: unknown keys snooze"),
    ('id = 1\nduration = "8 hours"\n' + USHERING, "duration '8 hours' is not a duration"),
    (HEAD + '[[phase]]\nat = "10m"\n[[phase]]\nat = "5m"\n' + USHERING, "phase 2: at 5m is not after phase 1's 10m"),
    (HEAD + '[[phase]]\nat = "10m"\n[[phase]]\nat = "10m"\n' + USHERING, "phase 2: at 10m is not after"),
    ('id = 1\nduration = "2h"\n[[phase]]\nat = "2h"\n[ushering]\nat = "1h"\n', "phase 1: at 2h is not before the end"),
    (HEAD + '[[phase]]\nat = "45m"\n' + USHERING, "phase 1: at 45m is not before the ushering's earliest start 40m"),
    (HEAD + "[[phase]]\nat = 0\npad = 45\n" + USHERING, r"phase 1 \(at 0s\): pad 45 must be 13..40 degC"),
    (HEAD + '[[phase]]\nat = 0\npad = "warm"\n' + USHERING, "pad 'warm' must be 13..40 degC or \"off\""),
    (HEAD + "[[phase]]\nat = 0\npad_offset = -12.5\n" + USHERING, "pad_offset -12.5 must be -10..\\+10 degC"),
    (HEAD + "[[phase]]\nat = 0\npad = 30\npad_offset = 1\n" + USHERING, "both pad and pad_offset"),
    (HEAD + "".join(f"[[phase]]\nat = {n}\n" for n in range(17)) + USHERING, "17 phases, at most 16"),
    (HEAD + "[[phase]]\nat = 0\nlight = 101\n" + USHERING, "light 101 must be a percentage 0..100"),
    (HEAD + '[[phase]]\nat = 0\nlight_ramp = "1m"\n' + USHERING, "light_ramp without light"),
    (HEAD + '[[phase]]\nat = 0\nlight = 5\nlight_ramp = "19h"\n' + USHERING, "light_ramp '19h' must be 0s..18h12m15s"),
    ('id = 1\nduration = "12h1s"\n' + USHERING, "duration '12h1s' must be 1s..12h"),
    (HEAD + '[[phase]]\nat = 0\nhaptic = "buzz"\n' + USHERING, "haptic 'buzz' must be one of off, pulse, wave"),
    (HEAD + '[ushering]\nat = "50m"\nsmart_window = "51m"\n', "ushering: smart_window 51m is longer than at 50m"),
    (HEAD + '[ushering]\nat = "1h"\n', "ushering: at 1h is not before the end"),
    ('id = 0\nduration = "1h"\n' + USHERING, "id 0 must be a whole number 1..65535"),
    (HEAD + "beds = 300\n" + USHERING, "beds 300 must be a whole number 1..255"),
    (HEAD + "version = true\n" + USHERING, "version True must be a whole number"),
]
BAD_TOML_IDS = [
    "unknown key",
    "unknown phase key",
    "unknown ushering key",
    "bad duration",
    "phases out of order",
    "phases at the same time",
    "phase at the end",
    "phase in the ushering",
    "pad out of range",
    "pad not a number",
    "pad_offset out of range",
    "pad and pad_offset",
    "too many phases",
    "light over 100",
    "ramp without light",
    "ramp too long",
    "longer than 12 h",
    "unknown haptic",
    "smart window over at",
    "ushering at the end",
    "id 0",
    "too many beds",
    "version not a number",
]


@pytest.mark.parametrize(("text", "message"), BAD_TOML, ids=BAD_TOML_IDS)
def test_a_bad_program_is_one_line_naming_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ProgramError, match=message) as raised:
        load(path)
    assert str(raised.value).startswith(f"{path}: ") and "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("broken.toml", "id = [", "not a TOML file"),
        ("broken.json", '{"id": 1,', "not a JSON file"),
        ("list.json", "[1, 2]", "not a table of keys"),
        ("night.yaml", "id: 1", "unknown program file type '.yaml' \\(use .toml or .json\\)"),
        ("night", "id = 1", "unknown program file type '\\(none\\)'"),
        ("missing.json", None, "cannot read the program: No such file or directory"),
        ("no-ushering.json", '{"id": 1, "duration": "1h"}', "ushering missing"),
    ],
)
def test_an_unreadable_program_file_is_one_line(tmp_path, name, text, message):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(ProgramError, match=message) as raised:
        load(path)
    assert str(raised.value).startswith(str(path)) and "\n" not in str(raised.value)


def test_json_programs_are_checked_like_toml(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(base(phase=[{"at": "0s", "pad": 33, "pad_offset": 1}])))
    with pytest.raises(ProgramError, match=r"bad.json: phase 1 \(at 0s\): both pad and pad_offset"):
        load(path)


@pytest.mark.parametrize("example", [SHORT, NIGHT])
def test_show_prints_the_phases_and_the_ushering(example):
    result = CliRunner().invoke(cli, ["program", "show", str(example)], terminal_width=120)
    assert result.exit_code == 0, result.output
    assert "Wake-Dream Ushering" in result.output and "comfort -1.5 °C" in result.output
    assert "comfort +1.0 °C" in result.output and "pulse" in result.output


def test_show_json_gives_the_program_data():
    result = CliRunner().invoke(cli, ["program", "show", "--json", str(SHORT)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["id"] == 2 and document["program_data"]["phases"][1]["pad_mode"] == "comfort_offset"


def test_show_on_a_bad_file_exits_2_with_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('id = 1\nduration = "1h"\ncolour = 3\n[ushering]\nat = "5m"\n')
    result = CliRunner().invoke(cli, ["program", "show", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip() == f"soma: error: {path}: unknown keys colour (known: {', '.join(TOP_KEYS)})"


# ---- upload: which version, when it starts -------------------------------------------------

NOW_US = 10**12


def status(program_id=0, version=0, now_us=NOW_US):
    return {"program_id": program_id, "program_version": version, "global_time_us": now_us}


def test_the_start_is_the_beds_global_time_plus_start_in():
    decision = decide_upload(load(NIGHT), status(), start_in_s=600)
    assert decision.start_us == NOW_US + 600_000_000
    assert decide_upload(load(NIGHT), status(), start_in_s=0).start_us == NOW_US


def test_the_version_is_the_options_then_the_files_then_the_beds_next():
    night, short = load(NIGHT), load(SHORT)  # night has no version, short has v1
    assert decide_upload(night, status(), 0).version == 1  # a bed without a program
    assert decide_upload(night, status(7, 3), 0).version == 4
    assert decide_upload(short, status(), 0).version == 1
    assert decide_upload(short, status(7, 3), 0, version=9).version == 9


@pytest.mark.parametrize(
    ("bed", "version", "message"),
    [
        ((7, 3), 3, "program 7 v3 would not replace the bed's program 7 v3"),
        ((7, 3), 2, "would never spread \\(give --version 4 or more\\)"),
        ((9, 3), 3, "program 7 v3 would not replace the bed's program 9 v3"),  # same version: the higher id wins
        ((7, 0xFFFF), None, "the highest version"),
    ],
)
def test_a_version_that_would_not_win_in_the_sanctuary_is_refused(bed, version, message):
    with pytest.raises(ProgramError, match=message):
        decide_upload(load(NIGHT), status(*bed), 0, version=version)


def test_a_same_version_with_a_higher_id_wins_and_is_accepted():
    assert decide_upload(load(NIGHT), status(5, 3), 0, version=3).version == 3
