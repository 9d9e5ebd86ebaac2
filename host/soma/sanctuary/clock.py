"""The sanctuary's global time as people read it: the host's wall clock, in its time zone,
through the instant a bed read its global time."""

from datetime import datetime, timedelta


class GlobalClock:
    """The sanctuary's global time as the host's wall clock: `global_now_us` read by the bed
    when the host's clock said `host_time_s` (s since the epoch)."""

    def __init__(self, global_now_us: int, host_time_s: float) -> None:
        self.global_now_us = global_now_us
        self.host_time = datetime.fromtimestamp(host_time_s).astimezone()  # the host's time zone

    def at(self, global_us: int) -> datetime:
        return self.host_time + timedelta(microseconds=global_us - self.global_now_us)

    def iso(self, global_us: int) -> str:
        return self.at(global_us).isoformat(timespec="milliseconds")

    def global_us(self, at: datetime) -> int:
        """The global time (µs) the sanctuary's clock reads at wall-clock instant `at`."""
        return self.global_now_us + round((at - self.host_time).total_seconds() * 1e6)

    def clock(self, global_us: int) -> str:
        """A global time as people read it: "22:31:05", with the day when not today."""
        return format_clock(self.at(global_us), self.host_time)


def format_clock(at: datetime, now: datetime) -> str:
    """A clock time to the nearest second, "22:31:05"; with the weekday within a week of
    `now` ("Fri 06:10:00"), else the date ("2026-12-24 22:30:00")."""
    at += timedelta(milliseconds=500)
    if at.date() == now.date():
        return at.strftime("%H:%M:%S")
    if abs((at.date() - now.date()).days) < 7:
        return at.strftime("%a %H:%M:%S")
    return at.strftime("%Y-%m-%d %H:%M:%S")
