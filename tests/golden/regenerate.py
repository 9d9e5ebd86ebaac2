"""Write tests/golden/vectors.json: fixed byte samples for every message.

Run only on purpose, after a deliberate schema change (`python tests/golden/regenerate.py`),
then read the diff: the point of golden vectors is that bytes never change by accident.
"""

import json
from pathlib import Path

from soma.crosscheck.firmware_codec import to_json
from soma_protocol import auth, codec, framing, ir

OUT = Path(__file__).with_name("vectors.json")
GOLDEN_KEY = bytes(range(0x40, 0x60))


def pattern(index, leaf):
    """A value per leaf whose bytes are all distinct, so swapped or resized fields show."""
    if leaf.kind == "bytes":
        return bytes((index * 7 + k) & 0xFF for k in range(leaf.size))
    if leaf.kind == "blob":
        return b"soma-%d" % index
    if leaf.flags is not None:
        return sum(leaf.flags.values())
    if leaf.enum:
        members = sorted(leaf.enum)
        return members[index % len(members)]
    if leaf.fmt in "fd":
        return (index + 1) * -1.25
    raw = int.from_bytes(bytes((0x11 * (index % 15) + k + 1) & 0x7F for k in range(leaf.size)), "little")
    return -raw if leaf.fmt.islower() else raw


def vectors():
    messages = {}
    for name, msg in ir.all_messages().items():
        values = [pattern(i, leaf) for i, leaf in enumerate(msg.fields)]
        messages[name] = {"values": [to_json(v) for v in values], "hex": codec.encode(name, values).hex()}
    beacon_values = [pattern(i, leaf) for i, leaf in enumerate(ir.all_messages()["beacon"].fields)]
    body = bytes.fromhex(messages["frame"]["hex"]) + bytes(range(0x00, 0x08)) + b"\x7d\x7e"
    return {
        "messages": messages,
        "signed_beacon": {
            "key": GOLDEN_KEY.hex(),
            "values": [to_json(v) for v in beacon_values[:-1]],
            "hex": auth.sign_beacon(GOLDEN_KEY, beacon_values).hex(),
        },
        "line_frame": {"body": body.hex(), "line": framing.encode(body).hex()},
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(vectors(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")
