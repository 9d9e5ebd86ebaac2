"""The generated firmware codec: current, complete, and refusing what it cannot mirror."""

import construct as cs
import pytest

import wire_codec
from soma_protocol import codegen, ir, schema

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core


def test_checked_in_codec_is_current():
    """Fails when the schema changed without `make codegen`, or the file was edited by hand."""
    assert codegen.OUTPUT.read_text() == codegen.render(), "firmware/wire_codec.py is stale: run `make codegen`"


def test_check_mode_reports_stale_file(tmp_path, capsys):
    stale = tmp_path / "wire_codec.py"
    widened = codegen.render().replace("HHiB8s", "HHiH8s")  # one field, one byte wider
    assert widened != codegen.render()
    stale.write_text(widened)
    assert codegen.main(["--check", "--output", str(stale)]) == 1
    assert "stale" in capsys.readouterr().err
    assert codegen.main(["--output", str(stale)]) == 0
    assert codegen.main(["--check", "--output", str(stale)]) == 0


@pytest.mark.parametrize(
    ("attribute", "edit"),
    [
        ("ENUMS_OUTPUT", ("    overtemp = 0", "    overtemp = 7")),  # a member's value edited by hand
        ("CONSTANTS_OUTPUT", ("SETPOINT_MAX_MC = 40000", "SETPOINT_MAX_MC = 45000")),
    ],
)
def test_check_mode_reports_stale_host_module(tmp_path, monkeypatch, capsys, attribute, edit):
    """The host's enums.py and constants.py are generated too: a hand edit fails --check."""
    original = getattr(codegen, attribute)
    copy = tmp_path / original.name
    text = original.read_text()
    assert edit[0] in text
    copy.write_text(text.replace(*edit))
    monkeypatch.setattr(codegen, attribute, copy)
    assert codegen.main(["--check"]) == 1
    assert f"{copy} is stale" in capsys.readouterr().err
    assert codegen.main([]) == 0  # rewrites only the stale copy: the tree is current
    assert copy.read_text() == text
    assert codegen.main(["--check"]) == 0


def test_host_enums_and_constants_are_current():
    assert codegen.ENUMS_OUTPUT.read_text() == codegen.render_enums(), "enums.py is stale: run `make codegen`"
    assert codegen.CONSTANTS_OUTPUT.read_text() == codegen.render_constants(), "constants.py is stale"


def test_layouts_match_the_schema_description():
    ids = codegen.layout_ids()
    assert list(ids) == list(ir.all_messages()) and len(wire_codec._OFFSETS) == 2 * len(ids)
    for name, msg in ir.all_messages().items():
        at = wire_codec._offset(ids[name])
        spec = wire_codec._LAYOUTS
        assert spec[at] | spec[at + 1] << 8 == (0xFFFF if msg.fixed_size is None else msg.fixed_size)
        assert spec[at + 2] == len(msg.fields)
        assert spec[at + 3] == msg.sealed


def test_wire_constants_blocks_are_current_and_required():
    table = codegen.constants()
    source = (
        "from micropython import const\n\n" + codegen.BLOCK_BEGIN + "\n" + codegen.BLOCK_END + "\nx = _BEACON_SIZE\n"
    )
    filled = codegen.render_block(source, table)
    assert f"_BEACON_SIZE = const({table['BEACON_SIZE']})" in filled
    assert codegen.render_block(filled, table) == filled
    stale = filled.replace(f"const({table['BEACON_SIZE']})", "const(61)")
    assert codegen.render_block(stale, table) == filled
    with pytest.raises(ir.UnsupportedConstruct, match="no `# wire constants"):
        codegen.render_block("x = _MESSAGE_ID_INFO\n", table)


def test_beacon_fits_on_air():
    assert codegen.constants()["BEACON_SIZE"] <= schema.BEACON_AIR_MAX


@pytest.mark.parametrize(
    ("node", "named"),
    [
        (cs.Struct("x" / cs.VarInt), "VarInt"),
        (cs.Struct("x" / cs.Int16ub), "'>H'"),
        (cs.Struct("n" / cs.Int8ul, "x" / cs.Bytes(cs.this.n)), "computed length"),
        (cs.Struct("x" / cs.Switch(cs.this.n, {1: cs.Int8ul})), "Switch"),
        (cs.Struct("x" / cs.PascalString(cs.Int8ul, "utf8")), "StringEncoded"),
        (cs.Struct(cs.Int8ul), "unnamed"),
    ],
)
def test_unsupported_constructs_stop_the_generator_by_name(node, named):
    with pytest.raises(ir.UnsupportedConstruct, match=named):
        ir.describe("probe", node)


def test_protocol_hash_is_in_the_codec_and_follows_the_schema(monkeypatch):
    assert wire_codec.PROTOCOL_HASH == ir.protocol_hash()
    widened = schema.Crc32Sealed(cs.Struct(*schema.Beacon.body.subcons[:-2], "hops" / cs.Int16ul, "tag" / cs.Bytes(8)))
    monkeypatch.setitem(schema.MESSAGES, "beacon", widened)
    assert ir.protocol_hash() != wire_codec.PROTOCOL_HASH


def test_generator_reports_unsupported_schema(monkeypatch, capsys):
    monkeypatch.setitem(schema.MESSAGES, "probe", cs.Struct("x" / cs.VarInt))
    assert codegen.main(["--check"]) == 2
    assert "VarInt" in capsys.readouterr().err
