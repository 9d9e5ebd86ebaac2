"""The defaults of every command's options: command line > environment > station file >
built-in; the station file read once, checked, in one line when wrong."""

import pytest
from click.testing import CliRunner

from soma.cli import cli


@pytest.mark.cpu
def test_defaults_come_from_the_command_line_then_the_environment_then_the_station_file(tmp_path, monkeypatch):
    for name in ("SOMA_PORT", "SOMA_STATION_FILE", "SOMA_DB"):
        monkeypatch.delenv(name, raising=False)
    station_file = tmp_path / "line3.toml"
    station_file.write_text('ports = ["/nonexistent/from-file"]\ndatabase = "records.db"\n')

    def error(args, **env):
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.splitlines()
        assert line.startswith("soma: error: ")
        return line

    file_only = error(["info", "--station-file", str(station_file)])
    assert "/nonexistent/from-file: no such port" in file_only
    assert error(["--station-file", str(station_file), "info"]) == file_only  # before the subcommand too
    assert error(["info"], SOMA_STATION_FILE=str(station_file)) == file_only
    from_env = error(["info"], SOMA_STATION_FILE=str(station_file), SOMA_PORT="/nonexistent/from-env")
    assert "/nonexistent/from-env: no such port" in from_env
    given = ["info", "--port", "/nonexistent/given"]
    assert "/nonexistent/given: no such port" in error(given, SOMA_STATION_FILE=str(station_file), SOMA_PORT="/x")
    # A path in the file is relative to the file; a reading command names the database it was given.
    assert str(tmp_path / "records.db") in error(["units", "--station-file", str(station_file)])
    assert "/elsewhere.db" in error(["units", "--station-file", str(station_file)], SOMA_DB="/elsewhere.db")
    # Several ports: the default of a repeatable --port; a one-port command must be told which.
    station_file.write_text('ports = ["/nonexistent/a", "/nonexistent/b"]\n')
    assert "Missing option '--port'" in error(["info", "--station-file", str(station_file)])
    # The file checked once, in one line naming it and what is wrong.
    station_file.write_text('ports = ["/dev/x"]\ncolour = "blue"\n')
    assert error(["info", "--station-file", str(station_file)]) == (
        f"soma: error: {station_file}: unknown key 'colour' (known: ports, bath, fixture, plan, key, sanctuary, "
        "station, operator, database, firmware)"
    )
    station_file.write_text("sanctuary = 'seven'\n")
    assert error(["info", "--port", "/x", "--station-file", str(station_file)]) == (
        f"soma: error: {station_file}: sanctuary must be a whole number"
    )
    assert f"{tmp_path}: cannot read the station file" in error(["info", "--station-file", str(tmp_path)])
    # --help shows each option's environment variable.
    assert "SOMA_PORT" in CliRunner().invoke(cli, ["station", "--help"]).output


@pytest.mark.cpu
def test_a_flag_typed_wins_over_a_key_from_the_defaults(tmp_path, monkeypatch):
    # --test-key (bench) and --new-key (provision) typed by the operator set aside a --key
    # that came from SOMA_KEY or the station file; both typed together are refused.
    monkeypatch.delenv("SOMA_STATION_FILE", raising=False)
    key = tmp_path / "sanctuary.key"
    key.write_text("00" * 32 + "\n")
    bench = ["bench", "--port", "/nonexistent/unit", "--only", "identity", "--test-key"]

    def error(args, **env):
        result = CliRunner().invoke(cli, args, env=env)
        (line,) = result.stderr.splitlines()
        return result.exit_code, line

    code, line = error(bench, SOMA_KEY=str(key))
    assert code == 2 and "/nonexistent/unit: no such port" in line
    code, line = error([*bench, "--key", str(key)])
    assert code == 2 and "not both" in line
    provision = ["provision", "--port", "/nonexistent/unit", "--sanctuary", "1", "--bed", "1"]
    code, line = error([*provision, "--new-key", str(tmp_path / "new.key")], SOMA_KEY=str(key))
    assert code == 2 and "/nonexistent/unit: no such port" in line
