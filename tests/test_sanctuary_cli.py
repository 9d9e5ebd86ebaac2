"""`soma program upload` and `soma sanctuary status` end to end, on a virtual bed given its
sanctuary key with `soma provision` (which waits for the unit to restart into it)."""

import json

from click.testing import CliRunner

from soma.cli import cli
from soma.link.serial_link import SerialLink
from soma.sim.sanctuary import Sanctuary, wait_for

EXAMPLE = "examples/programs/short.json"


def run(*args):
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_provision_upload_and_status(tmp_path):
    key = tmp_path / "sanctuary.key"
    with Sanctuary(beds=1, flashed=True, sleepers=False) as sanctuary:
        port = sanctuary.beds[0].port
        with SerialLink(port) as link:  # booted and answering
            client = link.management()
            assert wait_for(lambda: _answers(client), timeout=10)
        code, out = run("provision", "--port", port, "--sanctuary", "7", "--bed", "3", "--new-key", str(key), "--json")
        assert code == 0, out
        code, out = run("program", "upload", "--port", port, EXAMPLE, "--start-in", "10s", "--json")
        assert code == 0, out
        uploaded = json.loads(out)
        assert (uploaded["program_id"], uploaded["version"]) == (2, 1)
        assert uploaded["start_us"] - uploaded["global_time_us"] == 10_000_000
        # The same version again would never spread: refused before anything is sent.
        code, out = run("program", "upload", "--port", port, EXAMPLE)
        assert code == 2 and "would not replace" in out and len(out.strip().splitlines()) == 1

        def status():
            code, out = run("sanctuary", "status", "--port", port, "--json")
            assert code == 0, out
            return json.loads(out)

        assert wait_for(lambda: status()["root_id"] == 3, timeout=10, interval=0.5)  # alone: its own root
        status = status()
        assert status["bed_id"] == 3 and status["root_id"] == 3 and "synced" in status["flags"]
        assert (status["program_id"], status["program_version"]) == (2, 1) and status["peers"] == []
        code, out = run("sanctuary", "status", "--port", port)
        assert code == 0 and "bed 3" in out.lower()


def _answers(client):
    try:
        client.request("ping", [1], timeout=0.5)
    except TimeoutError:
        return False
    return True
