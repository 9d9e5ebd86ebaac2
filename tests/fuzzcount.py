"""Counts the fuzz cases each decoder saw in this run, so the `ci` profile's floor is checked."""

import os
from collections import Counter

CASES = Counter()
FLOOR = 10_000
# Examples per fuzz test scale with the profile: `ci` is sized to reach FLOOR cases.
SCALE = {"ci": 1.0, "dev": 0.05, "nightly": 20.0}.get(os.environ.get("HYPOTHESIS_PROFILE", "dev"), 1.0)


def examples(ci_count):
    return max(10, int(ci_count * SCALE))


def count(decoder, cases):
    CASES[decoder] += cases
