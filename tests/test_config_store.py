"""A unit's configuration, written and read over the management line on a provisioned
virtual bed (the tightest heap): config_read returns what is stored, so a second tool's
read-modify-write keeps the first one's values; a write says when its limits wait for a
restart (the default bench plan, which writes the configuration, passes on such a unit:
tests/test_bench.py)."""

import pytest

from soma.link.serial_link import SerialLink
from soma.sim.sanctuary import Sanctuary
from soma_protocol import ir

KEY = bytes(range(32))
FIELDS = [str(leaf.path) for leaf in ir.all_messages()["config_data"].fields]


def field(config, name):
    return config[FIELDS.index(name)]


def changed(config, **values):
    config = list(config)
    for name, value in values.items():
        config[FIELDS.index(name)] = value
    return config


@pytest.mark.concurrent  # virtual beds in real time, no timing bar judged: two at a time
def test_a_provisioned_unit_stores_what_is_written_and_says_when_a_restart_is_needed(tmp_path):
    with Sanctuary(beds=1, root=tmp_path, flashed=True, sleepers=False) as sanctuary:
        with SerialLink(sanctuary.beds[0].port) as link:
            client = link.management()
            client.provision(3, 1, KEY)
            first = client.request("config_read", timeout=5)
            # One tool lowers the trip (a limit: the supervisor takes it at the next boot)...
            generation, restart = client.request("config_write", changed(first, trip_mc=41_000), timeout=10)
            assert restart == 1 and generation >= 1
            # ...a second tool reads, changes a gain and writes back: the trip stays lowered.
            second = client.request("config_read", timeout=5)
            assert field(second, "trip_mc") == 41_000
            generation2, restart2 = client.request(
                "config_write", changed(second, **{"zone_left.ki_q16": 30}), timeout=10
            )
            assert generation2 == generation + 1 and restart2 == 1  # the trip still waits for the boot
            before = client.uptime()
            client.request("reboot", [0, 0], timeout=5)
            client.await_new_boot(before, 20)
            booted = client.request("config_read", timeout=5)
            assert field(booted, "trip_mc") == 41_000 and field(booted, "zone_left.ki_q16") == 30
            # Now running what is stored: a gains-only write applies at once.
            _, restart3 = client.request("config_write", changed(booted, **{"zone_left.kp_q16": 39_000}), timeout=10)
            assert restart3 == 0
            assert field(client.request("config_read", timeout=5), "zone_left.kp_q16") == 39_000
