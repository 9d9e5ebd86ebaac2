"""Programs on the clock and the sanctuary (host side, a fixed clock): `--start-at` maps a
wall-clock time (next occurrence, or an ISO date and time) onto the sanctuary's global time
through the instant the bed read it; an upload's bed count is checked against the beds the
bed hears; `sanctuary status` says why each grant is what it is, in W and clock times."""

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from soma.cli import cli
from soma.sanctuary import program as programs
from soma.sanctuary.clock import GlobalClock, format_clock
from soma.sanctuary.program import ProgramError
from soma.sanctuary.program_wire import decide_upload, parse_start_at
from soma.sanctuary.share import explain
from soma.sanctuary.status import summarize
from soma_protocol.enums import BeaconFlags, ShareFlags

pytestmark = pytest.mark.cpu  # virtual time only: `make test` runs it on every core


@pytest.fixture(autouse=True)
def host_in_berlin(monkeypatch):
    """The host's time zone, as clock times are shown in it: Berlin, whatever this machine's."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 3, 17, 12, 30, tzinfo=BERLIN)  # the host's clock when the bed answered
GLOBAL_NOW_US = 663_598_000  # what the bed's clock read then ("global time 663.598 s")
NIGHT = programs.load("examples/programs/night.toml")


def status(**changes):
    """sanctuary_status fields as read_status gives them: bed 1 hearing bed 2."""
    fields = {
        "bed_id": 1,
        "flags": int(BeaconFlags.synced | BeaconFlags.is_root),
        "root_id": 1,
        "hops": 0,
        "skew_ppb": 0,
        "global_time_us": GLOBAL_NOW_US,
        "program_id": 0,
        "program_version": 0,
        "program_start_us": 0,
        "ushering_at_us": 0,
        "budget_w": 0,
        "demand_w": 240,
        "grant_w": 240,
        "program_beds": 0,
        "worst_case_w": 240,
        "counted_demand_w": 0,
        "unheard_beds": 0,
        "join_until_us": 0,
        "share": 0,
        "peer_count": 1,
        "first_peer": 0,
        "page_count": 1,
        "peers": [peer(2)],
        "host_time_s": NOW.timestamp(),
    }
    fields.update(changes)
    return fields


def peer(bed_id, demand_w=240, grant_w=0, age_ms=400, flags=int(BeaconFlags.synced)):
    return {
        "bed_id": bed_id,
        "age_ms": age_ms,
        "flags": flags,
        "root_id": 1,
        "hops": 1,
        "occupancy": 0,
        "wake_readiness": 0,
        "program_version": 1,
        "demand_w": demand_w,
        "grant_w": grant_w,
    }


def test_a_clock_time_is_its_next_occurrence_and_an_iso_time_is_taken_as_given():
    assert parse_start_at("22:30", NOW) == datetime(2026, 12, 3, 22, 30, tzinfo=BERLIN)
    assert parse_start_at("06:10:15", NOW) == datetime(2026, 12, 4, 6, 10, 15, tzinfo=BERLIN)  # tomorrow
    assert parse_start_at("17:12", NOW) == datetime(2026, 12, 4, 17, 12, tzinfo=BERLIN)  # just passed
    assert parse_start_at("2026-12-24T22:30", NOW) == datetime(2026, 12, 24, 22, 30, tzinfo=BERLIN)
    utc = parse_start_at("2026-12-03T21:30:00+00:00", NOW)
    assert utc == datetime(2026, 12, 3, 22, 30, tzinfo=BERLIN)
    with pytest.raises(ValueError, match="not a clock time"):
        parse_start_at("half past ten", NOW)


def test_start_at_maps_onto_the_global_clock_through_the_instant_the_bed_read_it():
    at = datetime(2026, 12, 3, 22, 30, tzinfo=BERLIN)
    decision = decide_upload(NIGHT, status(), start_at=at)
    seconds = (at - NOW).total_seconds()  # 5 h 17 min 30 s
    assert decision.start_us == GLOBAL_NOW_US + round(seconds * 1e6) == GLOBAL_NOW_US + 19_050_000_000
    assert GlobalClock(GLOBAL_NOW_US, NOW.timestamp()).at(decision.start_us) == at
    with pytest.raises(ProgramError, match="in the past"):
        decide_upload(NIGHT, status(), start_at=NOW - timedelta(minutes=1))
    assert decide_upload(NIGHT, status(), start_in_s=600).start_us == GLOBAL_NOW_US + 600_000_000


def test_an_upload_checks_the_bed_count_against_the_beds_heard():
    # night.toml says 8; bed 1 hears bed 2: kept, and why it matters is said
    decision = decide_upload(NIGHT, status())
    assert decision.beds == 8
    (note,) = decision.notes
    assert "beds = 8, bed 1 hears 2 beds (1, 2): the 6 never heard are reserved at 240 W each" in note
    assert "1440 W of the 600 W budget" in note and "--beds 2" in note
    assert decide_upload(NIGHT, status(), beds=2) == decide_upload(NIGHT, status(), beds=2)
    assert decide_upload(NIGHT, status(), beds=2).notes == []
    # fewer than heard: raised (every bed heard is counted anyway); --beds fewer: refused
    three = status(peers=[peer(2), peer(5)])
    small = programs.from_data({**_night_data(), "beds": 1})
    raised = decide_upload(small, three)
    assert raised.beds == 3 and "uploaded with beds = 3" in raised.notes[0]
    with pytest.raises(ProgramError, match="--beds 2 is fewer than the sanctuary has: bed 1 hears 3 beds"):
        decide_upload(NIGHT, three, beds=2)


def _night_data():
    import tomllib

    with open("examples/programs/night.toml", "rb") as file:
        return tomllib.load(file)


def reserved_night():
    """Bed 1 of a 2-bed sanctuary running night.toml in its join window."""
    start = GLOBAL_NOW_US - 5_000_000
    return status(
        program_id=7,
        program_version=1,
        program_start_us=start,
        budget_w=600,
        grant_w=0,
        program_beds=8,
        counted_demand_w=240,
        unheard_beds=6,
        join_until_us=start + 20_000_000,
        share=int(ShareFlags.joining),
    )


def test_status_says_the_never_heard_beds_take_the_budget_until_the_window_ends():
    clock = GlobalClock(GLOBAL_NOW_US, NOW.timestamp())
    view = explain(reserved_night(), clock)
    assert view["heard"] == [1, 2] and view["unheard_beds"] == 6 and view["left_w"] == 0
    assert [bed["share_w"] for bed in view["beds"]] == [0, 0]
    text = "\n".join(view["lines"])
    assert "6 never heard, reserved until 17:12:45 (the join window): the program says beds = 8" in text
    assert "reserved first: 1440 W of the 600 W budget" in text
    assert "bed 1 (this bed): asks 240 W, grant 0 W: nothing is left of the budget" in text
    assert view["join_until_at"] == "2026-12-03T17:12:45.000+01:00"


def test_status_after_the_window_shows_both_beds_met_in_full_and_the_others_counted_out():
    clock = GlobalClock(GLOBAL_NOW_US, NOW.timestamp())
    fields = reserved_night() | {"unheard_beds": 0, "share": 0, "grant_w": 240, "join_until_us": GLOBAL_NOW_US - 1}
    fields["peers"] = [peer(2, grant_w=240)]
    view = explain(fields, clock)
    assert [(bed["bed_id"], bed["share_w"]) for bed in view["beds"]] == [(1, 240), (2, 240)]
    text = "\n".join(view["lines"])
    assert "6 never heard counted out since 17:12:30 (the program says beds = 8)" in text  # nearest second
    assert "met in full: the budget covers every demand" in text


def test_status_explains_a_capped_share_a_silent_peer_and_a_late_bed():
    clock = GlobalClock(GLOBAL_NOW_US, NOW.timestamp())
    base = reserved_night() | {"unheard_beds": 0, "share": 0, "program_beds": 3, "budget_w": 400}
    capped = explain(base | {"peers": [peer(2), peer(3, demand_w=40)]}, clock)
    assert [bed["share_w"] for bed in capped["beds"]] == [180, 180, 40] and capped["level_w"] == 180
    assert "capped at the fair level, 180 W" in capped["beds"][0]["reason"]
    silent = explain(base | {"peers": [peer(2, age_ms=9_000)]}, clock)
    assert silent["stale"] == [2] and silent["beds"][1]["counted_w"] == 240
    assert "silent for 9 s: counted at its worst case, 240 W" in silent["beds"][1]["reason"]
    late = explain(base | {"share": int(ShareFlags.joining | ShareFlags.late), "counted_demand_w": 0}, clock)
    assert "draws nothing until 17:12:45" in late["beds"][0]["reason"]
    waiting = explain(base | {"share": int(ShareFlags.waiting), "counted_demand_w": 0}, clock)
    assert "not every bed it hears has named it yet" in waiting["beds"][0]["reason"]


def test_the_json_view_keeps_raw_fields_and_adds_clock_times():
    view = summarize(reserved_night())
    assert view["program_start_us"] == GLOBAL_NOW_US - 5_000_000 and view["budget_w"] == 600
    assert view["program_start_at"] == "2026-12-03T17:12:25.000+01:00"
    assert view["equal_rest"]["flags"] == ["joining"]


def test_clock_times_name_the_day_when_it_is_not_today():
    assert format_clock(datetime(2026, 12, 4, 6, 10, tzinfo=BERLIN), NOW) == "Fri 06:10:00"
    assert format_clock(datetime(2026, 12, 24, 22, 30, tzinfo=BERLIN), NOW) == "2026-12-24 22:30:00"


def test_program_show_at_a_clock_time_and_start_options_that_contradict_each_other():
    result = CliRunner().invoke(cli, ["program", "show", "examples/programs/night.toml", "--start-at", "22:30"])
    assert result.exit_code == 0, result.output
    assert "22:30:00 (0s)" in result.output and "23:00:00 (30m)" in result.output
    both = CliRunner().invoke(
        cli, ["program", "upload", "--port", "/dev/null", "--start-in", "5m", "--start-at", "22:30", "x.toml"]
    )
    assert both.exit_code == 2 and "give --start-in or --start-at, not both" in both.output
    bad = CliRunner().invoke(cli, ["program", "upload", "--port", "/dev/null", "--start-at", "soon", "x.toml"])
    assert bad.exit_code == 2 and "'soon' is not a clock time" in bad.output
