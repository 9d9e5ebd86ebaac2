"""Files the host writes for people: whole or not at all, and readable as any new file is."""

import os
import stat

import pytest

from soma.errors import SomaError
from soma.files import write_atomically

pytestmark = pytest.mark.cpu  # no wall clock


def test_a_report_gets_the_mode_of_a_new_file_not_a_private_one(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = write_atomically(tmp_path / "report.json", lambda f: f.write(b"{}"), "report")
    assert path.read_bytes() == b"{}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "report.json"
    path.write_bytes(b"old")

    def fail(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(SomaError, match="cannot write the report"):
        write_atomically(path, fail, "report")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["report.json"]
