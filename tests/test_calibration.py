"""Calibration in the simulated bath: units with R25 +-5 %, B +-2 % and ADC errors end within
0.1 degC at every point; a fit over the residual limit is refused and nothing is committed;
the Steinhart-Hart fit itself recovers a known curve."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from soma.calibration import Bath, calibrate, curve_c, fit_steinhart_hart
from soma.errors import SomaError
from soma.serial_link import SerialLink
from soma.sim.sanctuary import Sanctuary

SOMA = str(Path(sys.executable).with_name("soma"))


def test_fit_recovers_a_known_curve():
    known = (1.129148e-3, 2.34125e-4, 8.76741e-8)
    import math

    points = []
    for temp_c in (10.0, 20.0, 30.0, 40.0, 50.0):
        # invert 1/T = a + b x + c x^3 for x = ln R by bisection
        low, high = 0.0, 20.0
        for _ in range(200):
            mid = (low + high) / 2
            if curve_c(known, math.exp(mid)) > temp_c:
                low = mid
            else:
                high = mid
        points.append((math.exp(low), temp_c))
    fitted = fit_steinhart_hart(points)
    assert all(abs(curve_c(fitted, r) - t) < 1e-6 for r, t in points)


@pytest.mark.parametrize("seed", [4, 11])
def test_soma_calibrate_meets_the_bar_on_units_with_tolerances(tmp_path, seed):
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True, time_scale=1000, seed=seed) as sanctuary:
        sanctuary.place_in_bath(1)
        result = subprocess.run(
            [SOMA, "calibrate", "--port", sanctuary.beds[0].port, "--bath", sanctuary.bath.port, "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert len(report["after_c"]) == 5
    assert report["max_error_after_c"] <= 0.1
    assert max(abs(error) for point in report["before_c"] for error in point.values()) > 0.1  # it was needed


def test_a_fit_over_the_residual_limit_is_refused(tmp_path):
    with Sanctuary(beds=1, root=tmp_path / "beds", flashed=True, time_scale=1000) as sanctuary:
        sanctuary.place_in_bath(1)
        with SerialLink(sanctuary.bath.port, 9600) as bath_link, SerialLink(sanctuary.beds[0].port) as link:
            client = link.management()
            with pytest.raises(SomaError, match="over the 1e-06 degC limit: not committed"):
                calibrate(client, Bath(bath_link), residual_limit_c=1e-6, settle_timeout=30)
            assert client.request("calibration_read", timeout=5)[0] == 0  # still nominal
