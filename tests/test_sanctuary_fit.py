"""examples/programs/night.toml (unchanged: `beds = 8`) uploaded with `soma program upload`
to a sanctuary of two virtual beds (the real firmware, 96 KiB heaps): the six beds never
heard are reserved for the join window only, then both beds heat within the budget;
`soma sanctuary status` says why each grant is what it is, before and after; a third bed
provisioned late draws nothing until its own window has passed and then has its share.
The world's record of every pad's electrical draw (100 Hz) never exceeds the budget, and
each bed's safety oracle referees the whole run."""

import json
import threading
import time
from datetime import datetime

from click.testing import CliRunner

from soma.cli import cli
from soma.link.serial_link import SerialLink
from soma.sim.sanctuary import Sanctuary, wait_for

KEY = bytes(range(32))
NIGHT = "examples/programs/night.toml"
BUDGET_W = 600  # night.toml's
WORST_W = 240  # a bed's two pads at full drive


def run(*args):
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


def status(port):
    """`soma sanctuary status --json`, asked again while the unit answers busy (its heap had
    no room for the request's code just then: exit 1, "try again")."""
    for _ in range(10):
        result = CliRunner().invoke(cli, ["sanctuary", "status", "--port", port, "--json"])
        if result.exit_code != 1 or "too busy" not in result.output:
            break
        time.sleep(0.5)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def provision(port, bed_id):
    with SerialLink(port) as link:
        client = link.management()
        assert wait_for(lambda: _answers(client), timeout=10)
        client.provision(7, bed_id, KEY, timeout=30)


def _answers(client):
    try:
        client.request("ping", [1], timeout=0.5)
    except TimeoutError:
        return False
    return True


def drawn(world, since, until=float("inf")):
    return [watts for at, watts in list(world.drive_w) if since <= at < until]


def seconds_until(iso):
    return (datetime.fromisoformat(iso) - datetime.now().astimezone()).total_seconds()


def test_night_toml_on_two_beds_heats_both_after_the_join_window_and_a_late_bed_joins(tmp_path):
    with Sanctuary(beds=3, root=tmp_path, flashed=True, sleepers=False) as sanctuary:
        ports = [bed.port for bed in sanctuary.beds]
        world = sanctuary.world
        provisioning = [threading.Thread(target=provision, args=(ports[n], n + 1)) for n in range(2)]
        for thread in provisioning:
            thread.start()
        for thread in provisioning:
            thread.join()
        assert wait_for(lambda: [p["bed_id"] for p in status(ports[0])["peers"]] == [2], timeout=15, interval=0.5)

        uploaded = run("program", "upload", "--port", ports[0], NIGHT, "--start-in", "2s", "--json")
        result = json.loads(uploaded.stdout)
        assert result["beds"] == 8
        assert "the 6 never heard are reserved at 240 W each (1440 W of the 600 W budget)" in result["notes"][0]
        started = time.monotonic() + 2

        # In the join window: the six never heard take more than the budget; both beds get 0 W.
        assert wait_for(lambda: status(ports[1])["program_id"] == 7, timeout=10, interval=0.5)
        assert wait_for(lambda: time.monotonic() > started + 3, timeout=6)
        view = status(ports[0])
        share = view["equal_rest"]
        assert share["unheard_beds"] == 6 and share["flags"] == ["joining"] and view["grant_w"] == 0
        assert [bed["share_w"] for bed in share["beds"]] == [0, 0]
        text = run("sanctuary", "status", "--port", ports[0]).stdout
        assert "6 never heard, reserved until" in text and "the program says beds = 8" in text
        assert "reserved first: 1440 W of the 600 W budget" in text
        window_ends = time.monotonic() + seconds_until(share["join_until_at"])
        assert 10 < window_ends - started <= 22  # the program's window: 20 beacon periods from its start

        # After it: the six are counted out and both beds heat, within the budget.
        assert wait_for(lambda: time.monotonic() > window_ends + 4, timeout=25)
        assert max(drawn(world, started + 1, window_ends - 1)) == 0
        for port in ports[:2]:
            view = status(port)
            assert view["equal_rest"]["unheard_beds"] == 0 and view["grant_w"] == WORST_W, view["equal_rest"]
        text = run("sanctuary", "status", "--port", ports[0]).stdout
        assert "6 never heard counted out since" in text and "met in full" in text
        heating = drawn(world, window_ends + 2)
        assert min(heating) >= 0.9 * 2 * WORST_W  # both beds heat at full drive: 480 of 600 W
        assert all(abs(bed.world.outputs[0]) > 0 for bed in sanctuary.beds[:2])

        # A third bed appears: late, it draws nothing until its own window has passed; the
        # others make room as soon as they hear it; the three share 600 W.
        joined = time.monotonic()
        provision(ports[2], 3)
        assert wait_for(lambda: status(ports[2])["program_id"] == 7, timeout=15, interval=0.5)
        late = status(ports[2])
        assert "late" in late["equal_rest"]["flags"] and late["grant_w"] == 0
        own_window_ends = time.monotonic() + seconds_until(late["equal_rest"]["join_until_at"])
        assert wait_for(lambda: time.monotonic() > own_window_ends + 4, timeout=30)
        grants = [status(port)["grant_w"] for port in ports]
        assert grants == [BUDGET_W // 3] * 3, grants
        assert all(abs(bed.world.outputs[0]) > 0 for bed in sanctuary.beds)
        shared = drawn(world, own_window_ends + 2)
        assert min(shared) >= 0.9 * BUDGET_W

        # Every instant of the run, the sum of the pads' draws within the budget.
        assert drawn(world, joined) and max(drawn(world, 0)) <= BUDGET_W
        assert sanctuary.breaches == 0
