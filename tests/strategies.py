"""Hypothesis strategies derived from the schema description: valid values for any message."""

import functools
import math
import struct

from hypothesis import strategies as st

from soma_protocol import ir

MESSAGES = ir.all_messages()

_INT_BOUNDS = {
    letter: (-(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1)
    for letter, size in zip("bhiq", (1, 2, 4, 8), strict=True)
}
_INT_BOUNDS |= {letter.upper(): (0, (1 << (8 * size)) - 1) for letter, size in zip("bhiq", (1, 2, 4, 8), strict=True)}


def _float32(value):
    return struct.unpack("<f", struct.pack("<f", value))[0]


def leaf_values(leaf):
    if leaf.kind == "bytes":
        return st.binary(min_size=leaf.size, max_size=leaf.size)
    if leaf.kind == "blob":
        return st.binary(max_size=48)
    if leaf.flags is not None:
        bits = list(leaf.flags.values())
        return st.lists(st.sampled_from(bits), unique=True).map(sum)
    if leaf.fmt == "f":
        return st.floats(width=32, allow_nan=False, allow_infinity=False).map(_float32)
    low, high = _INT_BOUNDS[leaf.fmt]
    whole = st.integers(low, high)
    if leaf.enum:
        return st.one_of(st.sampled_from(sorted(leaf.enum)), whole)
    return st.one_of(st.sampled_from([low, high, 0]).filter(lambda v: low <= v <= high), whole)


@functools.cache  # one strategy per message: building and validating one costs more than a draw
def values_for(name):
    return st.tuples(*(leaf_values(leaf) for leaf in MESSAGES[name].fields)).map(list)


def same_values(a, b):
    """Equal value lists, treating NaN floats as equal to themselves (bit-exact)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if isinstance(x, float) and isinstance(y, float):
            if not (x == y or (math.isnan(x) and math.isnan(y))):
                return False
        elif x != y:
            return False
    return True
