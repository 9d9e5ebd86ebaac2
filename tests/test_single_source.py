"""Declare once, derive everywhere: every constant, limit and enum that two places must agree
on is declared in the schema (protocol/soma_protocol/schema.py: CONSTANTS, BOARD_CONSTANTS,
ENUMS) or pyproject.toml (the version), and every other copy is generated from it."""

import ast
import re
import shutil
import tomllib
from enum import IntEnum, IntFlag

import construct as cs
import pytest

import board
from soma_protocol import codegen, constants, enums, schema

pytestmark = pytest.mark.cpu  # no wall clock

REPO = codegen.REPO
GENERATED = {codegen.OUTPUT, codegen.ENUMS_OUTPUT, codegen.CONSTANTS_OUTPUT}
_WIRE_BLOCK = re.compile(re.escape(codegen.BLOCK_BEGIN) + r"\n(.*?)" + re.escape(codegen.BLOCK_END), re.DOTALL)
_SHARED_BLOCK = re.compile(re.escape(codegen.SHARED_BEGIN) + r"\n(.*?)" + re.escape(codegen.SHARED_END), re.DOTALL)


def _schema_table(node):
    return dict(node.flags if isinstance(node, cs.FlagsEnum) else node.encmapping)


def _micropython_sources():
    for folder in codegen.MICROPYTHON_SOURCES:
        for path in sorted((REPO / folder).glob("*.py")):
            if path != codegen.OUTPUT:
                yield path


def _block_values(text, pattern):
    """NAME -> value of each assignment in a generated block (private names without their `_`)."""
    match = pattern.search(text)
    if match is None:
        return {}
    values = {}
    for node in ast.parse(match.group(1)).body:
        assert isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
        value = node.value.args[0] if isinstance(node.value, ast.Call) else node.value  # const(...)
        values[node.targets[0].id.lstrip("_")] = ast.literal_eval(value)
    return values


def _sources():
    """Every Python source of the tree outside the generated files, generated blocks removed."""
    for folder in ("firmware", "host", "protocol", "benchmarks", "tests"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if path not in GENERATED:
                yield path, _SHARED_BLOCK.sub("", _WIRE_BLOCK.sub("", path.read_text()))


def _literal_assignments(text):
    """(name, value) of every assignment of literals: `X = 3`, `_X = const(3)`, `A, B = 1, 2`."""
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            value = node.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "const" and value.args:
                value = value.args[0]
            if isinstance(target, ast.Name):
                pairs = [(target, value)]
            elif isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
                pairs = list(zip(target.elts, value.elts, strict=False))
            else:
                continue
            for name, item in pairs:
                if isinstance(name, ast.Name) and isinstance(item, ast.Constant):
                    yield name.id, item.value


def test_host_enums_are_the_schema_enums():
    assert sorted(name for name in vars(enums) if isinstance(getattr(enums, name), type)) == sorted(
        [*schema.ENUMS, "IntEnum", "IntFlag"]
    )
    for name, node in schema.ENUMS.items():
        host = getattr(enums, name)
        assert issubclass(host, IntFlag if isinstance(node, cs.FlagsEnum) else IntEnum), name
        members = {member.name: int(member) for member in host.__members__.values()}
        assert members == {str(k): int(v) for k, v in _schema_table(node).items()}, name
        assert list(members) == [str(k) for k in _schema_table(node)], f"{name}: declaration order"


def test_host_constants_are_the_schema_constants():
    declared = {**schema.CONSTANTS, **schema.BOARD_CONSTANTS}
    public = {name: value for name, value in vars(constants).items() if name.isupper()}
    with open(REPO / "pyproject.toml", "rb") as file:
        version = tomllib.load(file)["project"]["version"]
    assert public == {**declared, "PROTOCOL_HASH": codegen.ir.protocol_hash(), "VERSION": version}


@pytest.mark.parametrize("path", list(_micropython_sources()), ids=lambda path: str(path.relative_to(REPO)))
def test_firmware_const_blocks_hold_the_schema_values(path):
    table = codegen.constants()
    block = _block_values(path.read_text(), _WIRE_BLOCK)
    assert block == {name: table[name] for name in block}


def test_shared_block_of_the_pad_model_holds_the_board_values():
    for name in codegen.SHARED_SOURCES:
        block = _block_values((REPO / name).read_text(), _SHARED_BLOCK)
        assert block and block == {key: schema.BOARD_CONSTANTS[key] for key in block}


def test_board_declaration_derives_from_the_schema():
    assert {channel.name: int(channel) for channel in enums.OutputChannel} == {
        "drive_left": board.OUT_DRIVE_LEFT,
        "drive_right": board.OUT_DRIVE_RIGHT,
        "haptic": board.OUT_HAPTIC,
        "wake_light": board.OUT_WAKE_LIGHT,
        "status_led": board.OUT_STATUS_LED,
    }
    assert board.OUT_CHANNELS == schema.OUTPUT_CHANNELS and board.ADC_CHANNELS == schema.SENSOR_CHANNELS
    for name in ("NTC_R25_OHM", "NTC_B_KELVIN", "NTC_PULLUP_OHM", "ADC_FULL_SCALE", "DRIVE_FULL_POWER_W"):
        assert getattr(board, name) == schema.BOARD_CONSTANTS[name], name
    assert board.CURRENT_FULL_SCALE_MA == schema.CURRENT_FULL_SCALE_MA


def test_version_is_pyproject_s_everywhere():
    import soma

    assert soma.__version__ == constants.VERSION
    bed_source = (REPO / "firmware" / "bed.py").read_text()
    assert _block_values(bed_source, _WIRE_BLOCK)["VERSION"] == constants.VERSION.encode()
    assert "FIRMWARE_VERSION = _VERSION" in bed_source


# A shared value under another name than the schema's, as hand copies were called.
ALIASES = {
    "PULLUP_OHM": "NTC_PULLUP_OHM",
    "FULL_SCALE": "ADC_FULL_SCALE",
    "MIDSCALE": "ADC_MIDSCALE",
    "BCG_MIDSCALE": "ADC_MIDSCALE",
    "KEY_BYTES": "KEY_LEN",
    "OUT_CHANNELS": "OUTPUT_CHANNELS",
    "ADC_CHANNELS": "SENSOR_CHANNELS",
}


# Names that mean something else than the enum member they share a spelling and value with.
NOT_COPIES = {("tests/test_records.py", "CORRUPT")}  # a record file's storage state, not CalibrationState


def test_shared_literals_are_declared_once():
    """No source outside the schema assigns a shared constant's value to its name (or an old
    alias of it), nor an enum member's value to a name for that member, nor the version."""
    shared = {**schema.CONSTANTS, **schema.BOARD_CONSTANTS}
    members, bare_members = {}, {}  # by ENUM_MEMBER; by MEMBER alone (KEY_MISSING), host side only
    for enum_name, node in schema.ENUMS.items():
        for member, value in _schema_table(node).items():
            members[codegen._const_name(enum_name, str(member))] = int(value)
            bare_members.setdefault(str(member).upper(), set()).add(int(value))
    copies = []
    for path, text in _sources():
        where = path.relative_to(REPO)
        if path == REPO / "protocol" / "soma_protocol" / "schema.py":
            continue
        for name, value in _literal_assignments(text):
            bare = name.lstrip("_").upper()
            if (str(where), name) in NOT_COPIES:
                continue
            if where.parts[0] != "firmware" and name.isupper() and value in bare_members.get(bare, ()):
                copies.append(f"{where}: {name} = {value!r}")
            declared = shared.get(bare, shared.get(ALIASES.get(bare, ""), members.get(bare)))
            if declared is not None and value == declared and not isinstance(value, bool):
                copies.append(f"{where}: {name} = {value!r}")
            if isinstance(value, str | bytes) and value in (constants.VERSION, constants.VERSION.encode()):
                if not path.name.startswith("test_"):  # tests may spell out what a unit must report
                    copies.append(f"{where}: {name} = {value!r}")
    assert copies == [], "\n".join(copies)


def test_stale_firmware_block_fails_the_check(tmp_path, monkeypatch, capsys):
    """A hand edit of a generated firmware const (the board's heater power) is drift: the
    codegen's --check fails on it, naming the file, and regenerating restores the value."""
    for folder in codegen.MICROPYTHON_SOURCES:
        (tmp_path / folder).mkdir(parents=True)
        for path in (REPO / folder).glob("*.py"):
            if path != codegen.OUTPUT:
                shutil.copy(path, tmp_path / folder / path.name)
    for name in codegen.SHARED_SOURCES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    monkeypatch.setattr(codegen, "REPO", tmp_path)
    assert codegen.main(["--check"]) == 0
    copy = tmp_path / "firmware" / "board.py"
    text = copy.read_text()
    assert "_DRIVE_FULL_POWER_W = const(120)\n" in text
    copy.write_text(text.replace("_DRIVE_FULL_POWER_W = const(120)\n", "_DRIVE_FULL_POWER_W = const(150)\n"))
    assert codegen.main(["--check"]) == 1
    assert f"{copy} is stale" in capsys.readouterr().err
    assert _block_values(copy.read_text(), _WIRE_BLOCK)["DRIVE_FULL_POWER_W"] != schema.DRIVE_FULL_POWER_W
    assert codegen.main([]) == 0
    assert copy.read_text() == text
