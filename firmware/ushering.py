"""Wake-Dream Ushering: when it starts on the shared clock, and how the light rises.

The smart window is the program's last minutes. Global time in it is cut into epochs of
`epoch_us`; an epoch's reports are what the beacons of that epoch said about each bed
(bed id, occupancy, wake readiness). The ushering starts at the end of the first epoch in
which a strict majority of the occupied beds were in light sleep or moving, or at the
window's end if that never happens: a pure function of the reports, so every bed that
holds the same reports (the root floods its own in its beacons) picks the same instant,
in whatever order they arrived. Empty beds and beds of unknown occupancy do not count;
with no occupied bed at all, the window's end.

The wake light follows perceived brightness (CIE 1931 lightness), not duty: a linear PWM
ramp would leap at the start and crawl at the end.
"""

from micropython import const

OCCUPIED = const(2)  # schema Occupancy
LIGHT = const(2)  # schema WakeReadiness
MOVING = const(4)

# Duty (permille) at lightness 0, 1/16, ... 16/16 of full: CIE 1931, luminance from
# lightness (L* <= 8: L*/903.3, else ((L* + 16) / 116)^3); interpolated in between.
_DUTY_AT_LIGHTNESS = (0, 7, 15, 27, 44, 68, 98, 137, 184, 242, 310, 390, 483, 589, 710, 847, 1000)
_STEPS = const(16)


def onset_us(window_start_us, window_end_us, epoch_us, reports):
    """reports: {epoch index (from window_start_us): [(bed_id, occupancy, readiness)]}.
    Return the global time at which the ushering starts."""
    epochs = (window_end_us - window_start_us) // epoch_us
    for epoch in range(epochs):
        beds = {}
        for bed_id, occupancy, readiness in reports.get(epoch, ()):
            # A bed heard twice in an epoch: occupied and ready if any report says so (order-free).
            was_occupied, was_ready = beds.get(bed_id, (False, False))
            beds[bed_id] = (was_occupied or occupancy == OCCUPIED, was_ready or readiness in (LIGHT, MOVING))
        occupied = [ready for is_occupied, ready in beds.values() if is_occupied]
        if occupied and 2 * sum(occupied) > len(occupied):
            return window_start_us + (epoch + 1) * epoch_us
    return window_end_us


def light_permille(elapsed_us, ramp_us, peak_permille):
    """The wake light's duty (permille) `elapsed_us` into a ramp that reaches
    `peak_permille` of full perceived brightness after `ramp_us`."""
    if elapsed_us <= 0:
        return 0
    lightness = peak_permille if elapsed_us >= ramp_us else peak_permille * elapsed_us // ramp_us
    step, rest = divmod(lightness * _STEPS, 1000)
    if step >= _STEPS:
        return _DUTY_AT_LIGHTNESS[_STEPS]
    low, high = _DUTY_AT_LIGHTNESS[step], _DUTY_AT_LIGHTNESS[step + 1]
    return low + (high - low) * rest // 1000
