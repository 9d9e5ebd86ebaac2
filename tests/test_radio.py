"""The radio medium's loss, bursts, delay, jitter and partitions, measured over many frames;
and beacons crossing it between two flashed virtual beds."""

import pytest

from soma.link.serial_link import SerialLink
from soma.sim.radio import RadioMedium, RadioSettings
from soma.sim.sanctuary import Sanctuary, wait_for

FRAMES = 20_000


def send_many(medium, frames=FRAMES, receivers=(0, 1)):
    for n in range(frames):
        medium.transmit(0, b"x", receivers, now=n * 1.0)
    return medium.due(frames + 10.0)


def test_independent_loss_rate():
    medium = RadioMedium(RadioSettings(loss=0.2), seed=3)
    delivered = send_many(medium)
    assert abs(len(delivered) / FRAMES - 0.8) < 0.015
    assert medium.counts["lost_random"] + medium.counts["delivered"] == FRAMES


def test_bursty_loss_follows_gilbert_elliott():
    medium = RadioMedium(RadioSettings(p_enter_burst=0.05, p_leave_burst=0.25), seed=4)
    outcomes = []
    for n in range(FRAMES):
        medium.transmit(0, n, (0, 1), now=float(n))
    received = {payload for _, payload, _ in medium.due(FRAMES + 10.0)}
    outcomes = [n in received for n in range(FRAMES)]
    bursts, run = [], 0
    for ok in outcomes:
        if not ok:
            run += 1
        elif run:
            bursts.append(run)
            run = 0
    assert abs(sum(bursts) / len(bursts) - 1 / 0.25) < 0.5  # mean burst: 1 / p_leave
    assert abs(outcomes.count(False) / FRAMES - 0.05 / 0.30) < 0.02  # time in the bad state


def test_delay_and_jitter_bounds():
    medium = RadioMedium(RadioSettings(delay_s=0.004, jitter_s=0.001), seed=5)
    medium.transmit(0, b"x", (0, 1, 2), now=10.0)
    assert medium.due(10.0029) == []
    assert len(medium.due(10.0051)) == 2


def test_partition_and_heal():
    medium = RadioMedium(seed=6)
    medium.partition({0, 1}, {2})
    medium.transmit(0, b"a", (0, 1, 2), now=0.0)
    assert [receiver for receiver, _, _ in medium.due(1.0)] == [1]
    assert medium.counts["partitioned"] == 1
    medium.partition()
    medium.transmit(2, b"b", (0, 1, 2), now=2.0)
    assert sorted(receiver for receiver, _, _ in medium.due(3.0)) == [0, 1]


@pytest.mark.parametrize("bad", [{"loss": 1.5}, {"p_leave_burst": -0.1}, {"delay_s": 0.001, "jitter_s": 0.002}])
def test_settings_are_checked(bad):
    with pytest.raises(ValueError):
        RadioSettings(**bad)


def test_beacons_cross_the_medium_between_flashed_beds(tmp_path):
    with Sanctuary(beds=2, root=tmp_path, flashed=True) as sanctuary:
        for number, bed in enumerate(sanctuary.beds, 1):
            with SerialLink(bed.port) as link:
                link.management().provision(9, number, bytes(range(32)))
        assert wait_for(lambda: all(bed.world.radio_received >= 2 for bed in sanctuary.beds), 6)
        assert sanctuary.world.radio.counts["delivered"] >= 4
