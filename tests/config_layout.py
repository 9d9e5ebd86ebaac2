"""The ConfigData record as the safety tests need it: its values in wire order by dotted name,
the range each can carry on the wire, the firmware's defaults and bounds (firmware/config.py)."""

import construct as cs

import config as config_rules
from soma_protocol import schema


def _leaves(struct, prefix=""):
    for sub in struct.subcons:
        if isinstance(sub.subcon, cs.Struct):
            yield from _leaves(sub.subcon, f"{sub.name}.")
        else:
            bits = 8 * sub.subcon.sizeof()
            signed = sub.subcon.fmtstr[-1].islower()
            wire = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
            yield prefix + sub.name, wire


FIELDS = [name for name, _ in _leaves(schema.ConfigData)]
WIRE = [wire for _, wire in _leaves(schema.ConfigData)]
INDEX = {name: index for index, name in enumerate(FIELDS)}
DEFAULTS = list(config_rules.validated())
BOUNDS = [tuple(config_rules._LIMITS[3 * index + 1 : 3 * index + 3]) for index in range(len(FIELDS))]  # (low, high)


def accepted(values):
    """The firmware's own check of a whole configuration (firmware/config.py, under CPython)."""
    try:
        config_rules.from_record(values)
    except ValueError:
        return False
    return True
