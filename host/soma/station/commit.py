"""A write the unit commits to its flash, and a power cut in the middle of it.

A unit whose power goes while it commits a record (a calibration, the sanctuary key)
keeps the old record or the new one whole (the firmware's storage writes a temporary file
and renames it), but the request is never answered. A unit that then answers from a new
boot lost power (or was reset) mid-commit: the station says so, and to run the step again,
rather than that the unit stopped answering."""

from collections.abc import Iterator
from contextlib import contextmanager

from soma.errors import SomaError
from soma.link.management import ManagementClient, ManagementTimeout

RESTART_WAIT_S = 20.0  # a unit's boot, self-checks included, takes a few seconds


@contextmanager
def committing(client: ManagementClient, what: str, again: str) -> Iterator[None]:
    """Run the block's commit of `what` (e.g. "calibration"); a unit that stops answering
    in it and comes back from a new boot is a SomaError saying to run `again` (a command
    line) again."""
    before = client.uptime()
    try:
        yield
    except ManagementTimeout as silent:
        try:
            client.await_new_boot(before, RESTART_WAIT_S)
        except ManagementTimeout:
            raise silent from None  # not back: gone, unplugged or hung, told as it is
        raise SomaError(
            f"the unit lost power during the {what} commit and restarted (it keeps the old {what} or the new one,"
            f" whole): run `{again}` again"
        ) from None
